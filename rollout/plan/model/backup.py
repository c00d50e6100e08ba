"""The verified backup taken before anything changes."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from rollout.plan.model.base import StrictModel

# --- backup --------------------------------------------------------------------------------


class BackupSettings(StrictModel):
    """The verified backup taken before any change. Mandatory unless waived by name."""

    enabled: bool = Field(default=True, description="Take a backup before the first change.")
    waived_by: str | None = Field(
        default=None,
        description="Who decided to skip the backup and why; required when `enabled` is false.",
    )
    collections: list[str] | None = Field(
        default=None, description="Collections to back up; empty means all of them."
    )
    retention_days: int = Field(default=30, ge=1, description="Days backups are kept.")
    verify: Literal["archive", "restore"] = Field(
        default="archive",
        description="`archive` reads the stored archive back and checks its SHA-256 against the manifest; "
        "`restore` also restores it into a scratch database and compares every collection's digest.",
    )

    @model_validator(mode="after")
    def _waiver_required(self) -> Self:
        if not self.enabled and not (self.waived_by and self.waived_by.strip()):
            raise ValueError("the backup is mandatory: to skip it, set waived_by to who decided and why")
        return self
