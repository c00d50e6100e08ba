"""Starting and stopping the whole sandbox, in-process or from the command line."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from rollout.adapters.mongo import connect
from rollout.errors import SandboxError
from rollout.plan.model import (
    FlagdTarget,
    FlagStoreTarget,
    MongoTarget,
    PrometheusTarget,
    S3Target,
    ServiceTarget,
    SliSettings,
    SmokeRequest,
    Targets,
    UnleashTarget,
)
from rollout.sandbox import unleash
from rollout.sandbox.components import (
    KEY_ENV,
    SECRET_ENV,
    SERVICE_JOB,
    TOKENS_FILE,
    provide_sandbox_credentials,
    stages,
)
from rollout.sandbox.processes import (
    HOST,
    ProcessRecord,
    ensure_port_free,
    free_port,
    spawn,
    wait_until,
)
from rollout.sandbox.seed import ShopSize

DATABASE = "shop"
BUCKET = "rollout-backups"
FLAG = "USE_UNIFIED_ORDERS"
STATE_ENV = "ROLLOUT_SANDBOX_STATE"
DEFAULT_STATE_FILE = Path(os.environ.get(STATE_ENV) or Path.home() / ".rollout" / "sandbox.json")
"""Where the running sandbox is recorded (``ROLLOUT_SANDBOX_STATE`` names another file, so that one
user may run two sandboxes, from two checkouts say, each with its own workers and CLI)."""

PrometheusMode = Literal["auto", "required", "off"]
FlagsMode = Literal["mongodb", "unleash", "flagd"]


@dataclass(frozen=True)
class SandboxOptions:
    """How to start the sandbox. A port of 0 means any free port."""

    mongodb_port: int = 0
    s3_port: int = 0
    service_port: int = 0
    prometheus_port: int = 0
    prometheus: PrometheusMode = "auto"
    load_rate: float = 40.0
    size: ShopSize = field(default_factory=ShopSize)
    scrape_interval: str = "1s"
    startup_timeout: float = 60.0
    flags: FlagsMode = "mongodb"


@dataclass(frozen=True)
class SandboxInfo:
    """Where the running sandbox's services answer, and which processes are its own."""

    state_dir: str
    mongodb_uri: str
    database: str
    s3_endpoint: str
    bucket: str
    service_url: str
    prometheus_url: str | None
    flag: str
    processes: tuple[ProcessRecord, ...] = ()
    flags: str = "mongodb"
    unleash_url: str | None = None
    flagd_path: str | None = None

    def to_json(self) -> str:
        """Serialise for the state file."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SandboxInfo:
        """Read back what :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        data["processes"] = tuple(ProcessRecord(**p) for p in data.get("processes", ()))
        return cls(**data)

    def targets(self) -> Targets:
        """Plan targets pointing at this sandbox."""
        provide_sandbox_credentials()
        return Targets(
            mongodb=MongoTarget(uri=self.mongodb_uri, database=self.database),
            s3=S3Target(
                bucket=self.bucket,
                prefix="backups/",
                endpoint_url=self.s3_endpoint,
                access_key_id=f"${{env:{KEY_ENV}}}",
                secret_access_key=f"${{env:{SECRET_ENV}}}",
                sse="AES256",
            ),
            prometheus=PrometheusTarget(
                url=self.prometheus_url or "http://127.0.0.1:9",
                sli=SliSettings(selector={"job": SERVICE_JOB}),
            ),
            flag_store=FlagStoreTarget(),
            unleash=self._unleash_target(),
            # The sandbox service's flagd provider polls its file every half second.
            flagd=FlagdTarget(path=self.flagd_path, refresh_interval=timedelta(seconds=1))
            if self.flagd_path
            else None,
            service=ServiceTarget(
                base_url=self.service_url,
                smoke=[SmokeRequest(name="list orders", path="/orders?user=smoke-test")],
            ),
        )

    def unleash_tokens(self) -> dict[str, str]:
        """The admin and backend tokens this sandbox's Unleash was started with."""
        return dict(json.loads((Path(self.state_dir) / TOKENS_FILE).read_text()))

    def _unleash_target(self) -> UnleashTarget | None:
        if self.unleash_url is None:
            return None
        os.environ[UNLEASH_TOKEN_ENV] = self.unleash_tokens()["admin"]
        return UnleashTarget(
            url=self.unleash_url,
            api_token=f"${{env:{UNLEASH_TOKEN_ENV}}}",
            project=unleash.PROJECT,
            environment=unleash.ENVIRONMENT,
            # The sandbox service's SDK polls every second, behind Unleash's cache of about a second.
            refresh_interval=timedelta(seconds=2),
        )


UNLEASH_TOKEN_ENV = "ROLLOUT_SANDBOX_UNLEASH_TOKEN"


class Sandbox:
    """The stand-ins, started as child processes in their own sessions.

    Use as a context manager in tests and the demo, or :meth:`up` from the
    command line and :meth:`down` later from another process via the state file.
    """

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self.info: SandboxInfo | None = None

    def __enter__(self) -> SandboxInfo:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        if self.info is not None:
            stop(self.info)
            self.info = None

    def up(self) -> SandboxInfo:
        """Start every service, seed the shop and wait until all answer."""
        opts = self.options
        prometheus_bin = shutil.which("prometheus") if opts.prometheus != "off" else None
        if opts.prometheus == "required" and prometheus_bin is None:
            raise SandboxError(
                "prometheus is not installed: `apt-get install prometheus` (make setup does it)"
            )
        why = unleash.unleash_missing() if opts.flags == "unleash" else None
        if why is not None:
            raise SandboxError(f"--flags unleash: {why}")
        ports = {
            "mongodb": opts.mongodb_port,
            "s3": opts.s3_port,
            "service": opts.service_port,
            "prometheus": opts.prometheus_port if prometheus_bin else -1,
            "postgres": 0 if opts.flags == "unleash" else -1,
            "unleash": 0 if opts.flags == "unleash" else -1,
        }
        for purpose, port in ports.items():
            if port > 0:
                ensure_port_free(port, purpose)
        chosen = {k: (v if v > 0 else free_port()) for k, v in ports.items() if v != -1}
        state = Path(tempfile.mkdtemp(prefix="rollout-sandbox-"))
        marker = str(state)
        info = SandboxInfo(
            state_dir=marker,
            mongodb_uri=f"mongodb://{HOST}:{chosen['mongodb']}/?directConnection=true",
            database=DATABASE,
            s3_endpoint=f"http://{HOST}:{chosen['s3']}",
            bucket=BUCKET,
            service_url=f"http://{HOST}:{chosen['service']}",
            prometheus_url=f"http://{HOST}:{chosen['prometheus']}" if prometheus_bin else None,
            flag=FLAG,
            flags=opts.flags,
            unleash_url=f"http://{HOST}:{chosen['unleash']}" if opts.flags == "unleash" else None,
            flagd_path=str(state / "flags.json") if opts.flags == "flagd" else None,
        )
        self.info = info
        try:
            self._start(info, chosen, prometheus_bin)
        except BaseException:
            stop(self.info)
            self.info = None
            raise
        return self.info

    def _start(self, info: SandboxInfo, ports: dict[str, int], prometheus_bin: str | None) -> None:
        """Start the components stage by stage: a stage's processes start together, then each is awaited."""
        client = connect(info.mongodb_uri, timeout_ms=1000)
        try:
            for stage in stages(self.options, info, ports, prometheus_bin, client):
                started = []
                for component in stage:
                    if component.before is not None:
                        component.before()
                    started.append((component, self._spawn(component.name, component.argv, component.env)))
                for component, record in started:
                    if component.ready is not None:
                        wait_until(
                            component.ready,
                            component.what,
                            timeout=self.options.startup_timeout,
                            still_alive=record.alive,
                        )
                    if component.after is not None:
                        component.after()
        finally:
            client.close()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ProcessRecord:
        assert self.info is not None
        record = spawn(name, argv, Path(self.info.state_dir), marker=self.info.state_dir, env=env)
        self.info = SandboxInfo(**{**asdict(self.info), "processes": (*self.info.processes, record)})
        return record


def stop(info: SandboxInfo) -> list[str]:
    """Stop the sandbox's own processes, newest first, and remove its directory.

    Returns the names of the processes that were still running.
    """
    stopped = []
    for record in reversed(info.processes):
        if record.alive():
            stopped.append(record.name)
        record.stop()
    shutil.rmtree(info.state_dir, ignore_errors=True)
    return stopped


def save(info: SandboxInfo, state_file: Path = DEFAULT_STATE_FILE) -> None:
    """Record a running sandbox so a later command can find and stop it."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(info.to_json())


def load(state_file: Path = DEFAULT_STATE_FILE) -> SandboxInfo | None:
    """The sandbox recorded in ``state_file``, if any."""
    try:
        return SandboxInfo.from_json(state_file.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as error:
        raise SandboxError(f"{state_file} is not a sandbox state file ({error}); delete it") from None
