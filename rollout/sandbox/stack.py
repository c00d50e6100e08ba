"""Starting and stopping the whole sandbox, in-process or from the command line."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import httpx

from rollout.adapters.mongo import connect
from rollout.adapters.prometheus import PrometheusClient
from rollout.errors import RolloutError, SandboxError
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
from rollout.sandbox.mongodb import answers, secantus_argv
from rollout.sandbox.postgres import database_user, init_cluster, psql
from rollout.sandbox.postgres import server_argv as postgres_argv
from rollout.sandbox.processes import (
    HOST,
    ProcessRecord,
    ensure_port_free,
    free_port,
    spawn,
    wait_until,
)
from rollout.sandbox.seed import ShopSize, seed_shop

DATABASE = "shop"
BUCKET = "rollout-backups"
FLAG = "USE_UNIFIED_ORDERS"
COMPANIONS = ("SHOW_UNIFIED_DASHBOARD", "ENABLE_DUAL_WRITE", "SHOW_SOURCE_INDICATOR")
"""The example plans' companion flags, made beside the main flag in Unleash or the flagd file."""
SERVICE_JOB = "orders"
# moto accepts any credentials; these names are what sandbox targets reference.
KEY_ENV, SECRET_ENV = "ROLLOUT_SANDBOX_AWS_KEY", "ROLLOUT_SANDBOX_AWS_SECRET"
DEFAULT_STATE_FILE = Path.home() / ".rollout" / "sandbox.json"

PrometheusMode = Literal["auto", "required", "off"]
FlagsMode = Literal["mongodb", "unleash", "flagd"]
TOKENS_FILE = "unleash-tokens.json"


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
            flagd=FlagdTarget(path=self.flagd_path) if self.flagd_path else None,
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
        )


UNLEASH_TOKEN_ENV = "ROLLOUT_SANDBOX_UNLEASH_TOKEN"


def provide_sandbox_credentials() -> None:
    """Put moto's dummy credentials where sandbox targets look for them.

    moto takes any credentials. Resolved secrets are masked in every output, so they are
    random rather than a word that appears in ordinary text (``sandbox`` would mask the
    plan name ``sandbox-demo``).
    """
    os.environ.setdefault(KEY_ENV, f"sbx-key-{secrets.token_hex(8)}")
    os.environ.setdefault(SECRET_ENV, f"sbx-secret-{secrets.token_hex(8)}")


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
        opts, state, py = self.options, Path(info.state_dir), sys.executable
        mongo = self._spawn("mongodb", secantus_argv(ports["mongodb"], state / "mongodb"))
        s3 = self._spawn(
            "s3",
            [
                py,
                "-m",
                "rollout.sandbox.s3server",
                "--port",
                str(ports["s3"]),
                "--state-dir",
                info.state_dir,
            ],
        )
        client = connect(info.mongodb_uri, timeout_ms=1000)
        try:
            wait_until(
                answers(client),
                "MongoDB (SecantusDB)",
                timeout=opts.startup_timeout,
                still_alive=mongo.alive,
            )
            seed_shop(client[info.database], opts.size)
        finally:
            client.close()
        wait_until(
            _http_ok(info.s3_endpoint + "/"),
            "S3 (moto)",
            timeout=opts.startup_timeout,
            still_alive=s3.alive,
        )
        provide_sandbox_credentials()
        _s3_client(info).create_bucket(Bucket=info.bucket)
        service_env = self._start_flags(info, ports)
        service = self._spawn(
            "service",
            [
                py,
                "-m",
                "rollout.sandbox.service",
                "--port",
                str(ports["service"]),
                "--mongodb-uri",
                info.mongodb_uri,
                "--database",
                info.database,
                "--flag",
                info.flag,
                "--state-dir",
                info.state_dir,
                "--flags",
                info.flags,
                *(["--unleash-url", info.unleash_url] if info.unleash_url else []),
                *(["--flagd-path", info.flagd_path] if info.flagd_path else []),
            ],
            env=service_env,
        )
        wait_until(
            _http_ok(info.service_url + "/health"),
            "orders service",
            timeout=opts.startup_timeout,
            still_alive=service.alive,
        )
        if prometheus_bin and info.prometheus_url:
            config = state / "prometheus.yml"
            config.write_text(_prometheus_config(info, opts.scrape_interval))
            prometheus = self._spawn(
                "prometheus",
                [
                    prometheus_bin,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={state / 'prometheus'}",
                    f"--web.listen-address={HOST}:{ports['prometheus']}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
            )
            with PrometheusClient(info.prometheus_url, timeout=2) as prom:
                wait_until(
                    prom.ready,
                    "Prometheus",
                    timeout=opts.startup_timeout,
                    still_alive=prometheus.alive,
                )
        if opts.load_rate > 0:
            self._spawn(
                "loadgen",
                [
                    py,
                    "-m",
                    "rollout.sandbox.loadgen",
                    "--url",
                    info.service_url,
                    "--users",
                    str(opts.size.users),
                    "--shops",
                    str(opts.size.shops),
                    "--rate",
                    str(opts.load_rate),
                    "--state-dir",
                    info.state_dir,
                ],
            )
        if prometheus_bin and info.prometheus_url:
            with PrometheusClient(info.prometheus_url, timeout=2) as prom:
                # The first scrape lands seconds after readiness; wait for it, never sleep blindly.
                wait_until(
                    _scraped(prom),
                    "Prometheus's first scrape of the service",
                    timeout=opts.startup_timeout,
                    interval=0.25,
                )

    def _start_flags(self, info: SandboxInfo, ports: dict[str, int]) -> dict[str, str]:
        """Start Unleash (on its PostgreSQL) or write the flagd file; the service's environment."""
        names = [info.flag, *COMPANIONS]
        if info.flagd_path is not None:
            off = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
            Path(info.flagd_path).write_text(json.dumps({"flags": {name: off for name in names}}, indent=2))
            return {}
        if info.unleash_url is None:
            return {}
        state, timeout = Path(info.state_dir), self.options.startup_timeout
        # The postgres user must reach its folder inside ours when we are root.
        state.chmod(0o711)
        data, sockets = init_cluster(state / "postgres")
        database = self._spawn("postgres", postgres_argv(data, sockets, ports["postgres"]))
        wait_until(
            lambda: psql(ports["postgres"], "select 1"),
            "PostgreSQL",
            timeout=timeout,
            still_alive=database.alive,
        )
        if not psql(ports["postgres"], "create database unleash"):
            raise SandboxError("could not create the unleash database in the sandbox's PostgreSQL")
        tokens = {
            "admin": f"*:*.sbx-{secrets.token_hex(16)}",
            "backend": f"{unleash.PROJECT}:{unleash.ENVIRONMENT}.sbx-{secrets.token_hex(16)}",
        }
        token_file = state / TOKENS_FILE
        token_file.touch(mode=0o600)
        token_file.write_text(json.dumps(tokens))
        url = f"postgres://{database_user()}@{HOST}:{ports['postgres']}/unleash"
        env = unleash.server_env(url, ports["unleash"], tokens["admin"], tokens["backend"])
        server = self._spawn("unleash", unleash.server_argv(info.state_dir), env=env)
        wait_until(
            unleash.answers(info.unleash_url, tokens["admin"]),
            "Unleash",
            timeout=timeout,
            still_alive=server.alive,
        )
        unleash.create_flags(info.unleash_url, tokens["admin"], names)
        return {unleash.ADMIN_TOKEN_ENV: tokens["admin"], unleash.BACKEND_TOKEN_ENV: tokens["backend"]}

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


def _s3_client(info: SandboxInfo) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=info.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ[KEY_ENV],
        aws_secret_access_key=os.environ[SECRET_ENV],
    )


def _http_ok(url: str) -> Any:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _scraped(prom: PrometheusClient) -> Any:
    def check() -> bool:
        try:
            samples = prom.query(f'up{{job="{SERVICE_JOB}"}} == 1')
            if not samples:
                return False
            return bool(prom.query(f'http_requests_total{{job="{SERVICE_JOB}"}}'))
        except RolloutError:
            return False

    return check


def _prometheus_config(info: SandboxInfo, interval: str) -> str:
    target = info.service_url.removeprefix("http://")
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {SERVICE_JOB}\n"
        f"    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
