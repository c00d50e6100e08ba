"""Plans for tests, written as files the way users write them: one factory instead of one per test file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rollout.plan.model import Targets

BASE: Mapping[str, Any] = {
    "release": {"version": "v2", "stable_version": "v1"},
    "flag": "USE_UNIFIED_ORDERS",
    "backup": {"enabled": False, "waived_by": "tests"},
    "phases": [{"name": "all", "ramp": [100], "window": {"count": 1}}],
    "rollback": {"watch": {"interval": "1s", "duration": "1s"}},
}
"""What every test plan has unless it says otherwise: one step to 100 %, no backup, a short watch."""


def target_sections(targets: Targets) -> dict[str, Any]:
    """``targets`` as a plan's ``targets:`` section, to change before writing."""
    return targets.model_dump(mode="json", exclude_none=True, by_alias=True)


class PlanFiles:
    """Writes plans into one folder: :data:`BASE` with the sections given, or a YAML text as it is."""

    def __init__(self, folder: Path, targets: Targets | None = None) -> None:
        """``targets``: written into every plan that does not set its own (None: no targets section)."""
        self.folder = folder
        self.targets = targets

    def __call__(self, name: str = "test-plan", *, file: str | None = None, **sections: Any) -> Path:
        """Write plan ``name`` (top-level sections replace the base's; ``targets=None`` leaves it out)."""
        plan: dict[str, Any] = {"name": name, **BASE}
        if self.targets is not None:
            plan["targets"] = target_sections(self.targets)
        plan.update(sections)
        plan = {key: value for key, value in plan.items() if value is not None}
        path = self.folder / (file or f"{name}.yaml")
        path.write_text(yaml.safe_dump(plan, sort_keys=False))
        return path

    def text(self, yaml_text: str, file: str = "plan.yaml") -> Path:
        """Write a plan given as YAML text, as it is."""
        path = self.folder / file
        path.write_text(yaml_text)
        return path
