"""What the rollback does: the data restore, cache invalidation and the health watch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import StrictModel
from rollout.plan.model.checks import CustomCheck
from rollout.plan.secrets import ConnectionString

# --- rollback ------------------------------------------------------------------------------


class RestoreSettings(StrictModel):
    """Whether a rollback restores data from the backup."""

    mode: Literal["none", "selective", "full"] = Field(
        default="none", description="`selective` restores `collections` only; `full` all."
    )
    collections: list[str] = Field(default_factory=list, description="Collections for a selective restore.")
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Selective restore of only the documents matching this MongoDB filter; "
        "the rest of each collection is left as it is.",
    )

    @model_validator(mode="after")
    def _selective_needs_collections(self) -> Self:
        if self.mode == "selective" and not self.collections:
            raise ValueError("a selective restore needs collections: list them")
        if self.filter is not None and self.mode != "selective":
            raise ValueError("a filter applies to a selective restore only: set mode to selective")
        return self


class CacheInvalidation(StrictModel):
    """Caches to clear after a rollback."""

    redis_url: ConnectionString | None = Field(
        default=None,
        description="Redis to clear keys in, e.g. `redis://:${env:REDIS_PASSWORD}@cache:6379/0`.",
    )
    redis_keys: list[str] = Field(
        default_factory=list, description="Key patterns (Redis glob) to delete, e.g. `orders:*`."
    )
    purge_url: ConnectionString | None = Field(
        default=None,
        description="URL that purges a CDN or cache (POST), or a path below `service.base_url`.",
    )

    @model_validator(mode="after")
    def _redis_pair(self) -> Self:
        if self.redis_keys and not self.redis_url:
            raise ValueError("redis_keys need redis_url: name the Redis to delete them in")
        if self.redis_url and not self.redis_keys:
            raise ValueError("redis_url without redis_keys deletes nothing: list the key patterns")
        return self


class Watch(StrictModel):
    """Health watched after a rollback."""

    interval: Duration = Field(default=timedelta(seconds=30), description="Time between checks.")
    duration: Duration = Field(default=timedelta(hours=1), description="How long to watch.")


class RollbackSettings(StrictModel):
    """What the compensating rollback does, besides undoing every traffic change."""

    automatic: bool = Field(
        default=True,
        description="Roll back by itself when a gate fails; when false, stop where traffic is and emit "
        "`rollout.failed` for a person or an automation to act on.",
    )
    restore: RestoreSettings = Field(default_factory=RestoreSettings, description="Data restore.")
    cache: CacheInvalidation = Field(default_factory=CacheInvalidation, description="Cache invalidation.")
    watch: Watch = Field(default_factory=Watch, description="Post-rollback health watch.")
    balance: list[CustomCheck] = Field(
        default_factory=list,
        description="Checks whose figures must agree after a rollback (e.g. orders against settlements).",
    )
    severity: Literal["SEV1", "SEV2", "SEV3"] = Field(
        default="SEV2", description="Default severity of an automatic rollback."
    )
    on_restart: Literal["resume", "rollback"] = Field(
        default="resume",
        description="A run of the same rollout that stopped half-way (a crash, a lost worker) is "
        "started again: carry on after its last completed step, or roll it back.",
    )


class UserPopulation(StrictModel):
    """Where the service's user ids live, so a dry run can count whom each step admits."""

    collection: str = Field(description="Collection of users, e.g. `users`.")
    id_field: str = Field(default="_id", description="Field holding the id the service buckets on.")
    filter: dict[str, Any] = Field(default_factory=dict, description="Which users count, e.g. active ones.")


class Release(StrictModel):
    """The versions involved."""

    version: str = Field(description="The release being rolled out, e.g. `backend-v2026.11.21-1200`.")
    stable_version: str | None = Field(default=None, description="Last stable release, the rollback target.")
