"""Where the flags live: MongoDB documents (the default), Unleash, or flagd definitions."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import StrictModel
from rollout.plan.secrets import ConnectionString, SecretValue


class FlagStoreTarget(StrictModel):
    """The MongoDB collection of flags (when no `unleash` or `flagd` is set) and of rollout records."""

    collection: str = Field(
        default="feature_flags", description="Collection of flag documents, when MongoDB holds the flags."
    )
    database: str | None = Field(
        default=None,
        description="Database of the flags and the rollout records; empty uses `mongodb.database`.",
    )


class UnleashTarget(StrictModel):
    """An Unleash server holding the flags, driven through its Admin API."""

    url: ConnectionString = Field(
        description="Unleash's base URL, without `/api`, e.g. `https://unleash.internal`."
    )
    api_token: SecretValue = Field(
        description="Reference to an admin or personal access token allowed to change the project's flags."
    )
    project: str = Field(default="default", description="Project holding the flags.")
    environment: str = Field(description="Environment the applications read, e.g. `production`.")
    store_field: str = Field(
        default="storeId", description="Context field the applications set to the store id, for pilot stores."
    )
    timeout: Duration = Field(default=timedelta(seconds=10), description="Per-request timeout.")
    refresh_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="How often your services' SDKs fetch the flags (Unleash's default 15 s): a step's "
        "first measurement waits this long more, so it reads the new audience.",
    )


class FlagdTarget(StrictModel):
    """flagd flag definitions, read by flagd or any OpenFeature SDK's in-process flagd provider."""

    path: str | None = Field(
        default=None,
        description="A JSON file of flag definitions (flagd's schema); flags not named in the plan are "
        "left as they are.",
    )
    configmap: str | None = Field(
        default=None,
        description="Instead of `path`: a ConfigMap in `targets.kubernetes.namespace` holding the "
        "definitions (flagd's Kubernetes sync or a mounted volume serves them).",
    )
    key: str = Field(default="flags.json", description="The ConfigMap's key holding the definitions.")
    store_field: str = Field(
        default="storeId", description="Evaluation-context key the applications set to the store id."
    )
    refresh_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="How long until your services read a change (a provider's file poll, 5 s by "
        "default; a mounted ConfigMap: kubelet's sync, about a minute): a step's first measurement "
        "waits this long more.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.path is None) == (self.configmap is None):
            raise ValueError("set path (a file) or configmap (a ConfigMap), exactly one")
        return self
