"""How the stable release is put back when the cluster cannot do it: a command or a webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import StrictModel
from rollout.plan.secrets import ConnectionString, SecretValue

VERSION_PLACEHOLDER = "{version}"


class DeployCommand(StrictModel):
    """A program that deploys a version: run as an argument list, never through a shell."""

    argv: list[str] = Field(
        min_length=1,
        description="Program and arguments; `{version}` in any of them becomes the release to deploy, "
        "e.g. `[./deploy.sh, --tag, '{version}']`.",
    )
    cwd: str | None = Field(default=None, description="Directory to run it in; empty: the working directory.")
    env: dict[str, SecretValue] = Field(
        default_factory=dict, description="Extra environment variables, as `${env:...}` or `${secret:...}`."
    )
    timeout: Duration = Field(default=timedelta(minutes=10), description="Longest it may run.")


class DeployWebhook(StrictModel):
    """An HTTP call that deploys a version (a platform's deploy hook)."""

    method: Literal["POST", "PUT", "PATCH"] = Field(default="POST", description="HTTP method.")
    url: ConnectionString = Field(description="Deploy hook URL; a secret part as a reference.")
    headers: dict[str, SecretValue] = Field(default_factory=dict, description="Headers, as references.")
    json_body: dict[str, Any] = Field(
        default_factory=dict,
        alias="json",
        description="JSON body; `{version}` in any string becomes the release to deploy.",
    )
    timeout: Duration = Field(default=timedelta(minutes=1), description="Longest the call may take.")


class DeployTarget(StrictModel):
    """How to put a release in place where Kubernetes is not the deployer: a command or a webhook."""

    command: DeployCommand | None = Field(default=None, description="A program to run.")
    webhook: DeployWebhook | None = Field(default=None, description="A deploy hook to call.")
    health_wait: Duration = Field(
        default=timedelta(minutes=2),
        description="After deploying, how long the service's health may take to answer 2xx (and to report "
        "the version, with `version_field`).",
    )
    version_field: str | None = Field(
        default=None,
        description="Field of the health endpoint's JSON that names the running version, e.g. `version`: "
        "the rollback waits until it is the stable release.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.command is None) == (self.webhook is None):
            raise ValueError("set exactly one of command or webhook")
        return self
