"""Deploying a release where Kubernetes is not the deployer: a command (argv, no shell) or a webhook.

The version goes into the argument list or the JSON body as a value, never into a shell
string, so no release name can run anything. A program that exits non-zero or outlives its
timeout, or a hook that answers 4xx, is a failed step naming the last lines it wrote; a
hook that answers 5xx or cannot be reached may pass and is retried.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx

from rollout.clock import Clock
from rollout.durations import format_duration
from rollout.errors import PermanentError, ServiceUnavailable
from rollout.plan.model import VERSION_PLACEHOLDER, DeployCommand, DeployWebhook

TAIL_LINES = 10


class DeployFailed(PermanentError):
    """The deploy command or hook answered, and the answer was a failure."""


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-TAIL_LINES:]) or "no output"


def _with_version(value: Any, version: str) -> Any:
    """``value`` with ``{version}`` replaced in every string it holds."""
    if isinstance(value, str):
        return value.replace(VERSION_PLACEHOLDER, version)
    if isinstance(value, list):
        return [_with_version(v, version) for v in value]
    if isinstance(value, dict):
        return {k: _with_version(v, version) for k, v in value.items()}
    return value


def run_command(command: DeployCommand, version: str, env: Mapping[str, str]) -> str:
    """Run the deploy program for ``version``; what it said, or :class:`DeployFailed`."""
    argv = [str(_with_version(arg, version)) for arg in command.argv]
    shown = " ".join(argv)
    seconds = command.timeout.total_seconds()
    try:
        done = subprocess.run(
            argv,
            cwd=command.cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except FileNotFoundError:
        raise DeployFailed(f"{argv[0]}: no such program: check targets.deploy.command.argv") from None
    except subprocess.TimeoutExpired as error:
        said = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        raise DeployFailed(
            f"{shown} did not finish within {format_duration(command.timeout)}; it last said: {_tail(said)}"
        ) from None
    output = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0:
        raise DeployFailed(f"{shown} exited with {done.returncode}: {_tail(output)}")
    return f"{shown}: done ({_tail(output)})"


def call_webhook(hook: DeployWebhook, version: str, url: str, headers: Mapping[str, str]) -> str:
    """Call the deploy hook for ``version``; 2xx is done, 4xx a failure, 5xx or no answer transient."""
    body = _with_version(hook.json_body, version)
    try:
        response = httpx.request(
            hook.method, url, json=body, headers=dict(headers), timeout=hook.timeout.total_seconds()
        )
    except httpx.TransportError as error:
        raise ServiceUnavailable(
            "deploy hook", f"{hook.method} {url}: {type(error).__name__}: {error}"
        ) from error
    if response.status_code >= 500:
        raise ServiceUnavailable("deploy hook", f"{hook.method} {url}: HTTP {response.status_code}")
    if not response.is_success:
        raise DeployFailed(f"{hook.method} {url}: HTTP {response.status_code}: {_tail(response.text)}")
    return f"{hook.method} {url}: HTTP {response.status_code}"


def wait_until_serving(
    healthy: Callable[[], bool],
    running: Callable[[], str | None] | None,
    version: str,
    wait: timedelta,
    clock: Clock,
    every: float = 1.0,
) -> str:
    """Until the service is healthy (and, given ``running``, reports ``version``), for at most ``wait``."""
    deadline = clock.now() + wait
    seen: str | None = None
    while True:
        ok = healthy()
        seen = running() if running is not None and ok else seen
        if ok and (running is None or seen == version):
            return f"healthy{f', running {version}' if running is not None else ''}"
        if clock.now() >= deadline:
            state = "healthy" if ok else "not healthy"
            shown = f", running {seen or 'an unknown version'}" if running is not None else ""
            raise DeployFailed(
                f"{state}{shown} {format_duration(wait)} after the deploy, not yet on {version}"
            )
        clock.sleep(every)
