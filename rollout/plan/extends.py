"""Shared definitions: a plan that ``extends`` a base file, overriding parts of it.

The base is read first (it may extend another), then the plan is laid over it:
mappings merge key by key, anything else (a list, a number, a string) replaces what
the base had. The result is validated as one plan. Each key remembers the file it
came from, so a problem in a shared part names the base file it must be fixed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.errors import PlanInvalid, Problem

EXTENDS = "extends"
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Layered:
    """A plan's data with its bases merged in, and which file each part comes from."""

    data: dict[str, Any]
    top: Path
    origins: dict[KeyPath, Path] = field(default_factory=dict)

    def origin(self, path: KeyPath) -> Path | None:
        """The file the value at ``path`` (or the nearest part holding it) was written in."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return None


def layered(
    data: dict[str, Any],
    here: Path,
    base_dir: Path,
    read: Callable[[Path], Any],
    chain: tuple[Path, ...] = (),
) -> Layered:
    """``data`` (written in ``here``) over the base it extends, resolved from ``base_dir``.

    ``read`` parses a base file into data. A missing base or a circle of bases is a
    problem at ``extends`` naming every file of the chain.
    """
    chain = (*chain, here)
    base = data.get(EXTENDS)
    own = {k: v for k, v in data.items() if k != EXTENDS}
    if base is None:
        return Layered(own, here, {(): here})
    if not isinstance(base, str) or not base.strip():
        raise PlanInvalid([Problem(EXTENDS, f"{base!r} is not a file name: write the path of the base plan")])
    path = (base_dir / base).resolve()
    shown = " -> ".join(str(p) for p in (*chain, path))
    if path in chain:
        raise PlanInvalid([Problem(EXTENDS, f"the plans extend each other in a circle ({shown}): break it")])
    if not path.is_file():
        raise PlanInvalid([Problem(EXTENDS, f"{base} does not exist ({shown}): check the path")])
    parent = read(path)
    if not isinstance(parent, dict):
        raise PlanInvalid([Problem(EXTENDS, f"{path} is not a YAML mapping of plan keys ({shown})")])
    under = layered(parent, path, path.parent, read, chain)
    origins = dict(under.origins)
    return Layered(_merge(under.data, own, here, origins, ()), here, origins)


def _merge(
    base: dict[str, Any], over: dict[str, Any], here: Path, origins: dict[KeyPath, Path], at: KeyPath
) -> dict[str, Any]:
    """``over`` laid on ``base``; ``origins`` learns which paths now come from ``here``."""
    merged = dict(base)
    for key, value in over.items():
        path = (*at, key)
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = _merge(below, value, here, origins, path)
            continue
        merged[key] = value
        for known in [p for p in origins if p[: len(path)] == path]:
            del origins[known]
        origins[path] = here
    return merged
