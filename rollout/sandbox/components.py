"""The sandbox's components as a table: each process, how it starts, how it is known ready, what follows.

:func:`stages` lists them in the order they start; the processes of one stage start together.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx

from rollout.adapters.prometheus import PrometheusClient
from rollout.errors import RolloutError, SandboxError
from rollout.sandbox import unleash
from rollout.sandbox.mongodb import answers, secantus_argv
from rollout.sandbox.postgres import database_user, init_cluster, psql
from rollout.sandbox.postgres import server_argv as postgres_argv
from rollout.sandbox.processes import HOST, wait_until
from rollout.sandbox.seed import seed_shop

if TYPE_CHECKING:
    from rollout.sandbox.stack import SandboxInfo, SandboxOptions

COMPANIONS = ("SHOW_UNIFIED_DASHBOARD", "ENABLE_DUAL_WRITE", "SHOW_SOURCE_INDICATOR")
"""The example plans' companion flags, made beside the main flag in Unleash or the flagd file."""
SERVICE_JOB = "orders"
# moto accepts any credentials; these names are what sandbox targets reference.
KEY_ENV, SECRET_ENV = "ROLLOUT_SANDBOX_AWS_KEY", "ROLLOUT_SANDBOX_AWS_SECRET"
TOKENS_FILE = "unleash-tokens.json"


def provide_sandbox_credentials() -> None:
    """Put moto's dummy credentials where sandbox targets look for them.

    moto takes any credentials. Resolved secrets are masked in every output, so they are
    random rather than a word that appears in ordinary text (``sandbox`` would mask the
    plan name ``sandbox-demo``).
    """
    os.environ.setdefault(KEY_ENV, f"sbx-key-{secrets.token_hex(8)}")
    os.environ.setdefault(SECRET_ENV, f"sbx-secret-{secrets.token_hex(8)}")


@dataclass(frozen=True)
class Component:
    """One process of the sandbox: how it starts, how it is known ready, what comes before and after."""

    name: str
    argv: list[str]
    ready: Callable[[], bool] | None = None
    what: str = ""
    env: dict[str, str] | None = None
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None


def _create_bucket(info: SandboxInfo) -> None:
    provide_sandbox_credentials()
    _s3_client(info).create_bucket(Bucket=info.bucket)


def _create_database(port: int, name: str) -> None:
    if not psql(port, f"create database {name}"):
        raise SandboxError(f"could not create the {name} database in the sandbox's PostgreSQL")


def _write_flagd_file(info: SandboxInfo) -> None:
    """With ``--flags flagd``: the definitions file, every flag of the example plans off."""
    if info.flagd_path is None:
        return
    off = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    flags = {name: off for name in [info.flag, *COMPANIONS]}
    Path(info.flagd_path).write_text(json.dumps({"flags": flags}, indent=2))


def stages(
    opts: SandboxOptions, info: SandboxInfo, ports: dict[str, int], prometheus_bin: str | None, client: Any
) -> list[list[Component]]:
    """The sandbox as a table: each process, how it is started, how it is known ready, what follows."""
    state, py = Path(info.state_dir), sys.executable
    table = [
        [
            Component(
                "mongodb",
                secantus_argv(ports["mongodb"], state / "mongodb"),
                ready=answers(client),
                what="MongoDB (SecantusDB)",
                after=lambda: seed_shop(client[info.database], opts.size),
            ),
            Component(
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
                ready=_http_ok(info.s3_endpoint + "/"),
                what="S3 (moto)",
                after=lambda: _create_bucket(info),
            ),
        ],
        *_flag_stages(info, ports),
        [
            Component(
                "service",
                [
                    *(py, "-m", "rollout.sandbox.service", "--port", str(ports["service"])),
                    *("--mongodb-uri", info.mongodb_uri, "--database", info.database),
                    *("--flag", info.flag, "--state-dir", info.state_dir, "--flags", info.flags),
                    *(["--unleash-url", info.unleash_url] if info.unleash_url else []),
                    *(["--flagd-path", info.flagd_path] if info.flagd_path else []),
                ],
                ready=_http_ok(info.service_url + "/health"),
                what="orders service",
                env=_service_env(info),
                before=lambda: _write_flagd_file(info),
            )
        ],
    ]
    if prometheus_bin and info.prometheus_url:
        config, url = state / "prometheus.yml", info.prometheus_url
        table.append(
            [
                Component(
                    "prometheus",
                    [
                        prometheus_bin,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={state / 'prometheus'}",
                        f"--web.listen-address={HOST}:{ports['prometheus']}",
                        "--web.enable-lifecycle",
                        "--log.level=warn",
                    ],
                    ready=lambda: PrometheusClient(url, timeout=2).ready(),
                    what="Prometheus",
                    before=lambda: config.write_text(_prometheus_config(info, opts.scrape_interval)),
                    # The first scrape lands seconds after readiness; wait for it, never sleep blindly.
                    after=lambda: wait_until(
                        _scraped(url),
                        "Prometheus's first scrape of the service",
                        timeout=opts.startup_timeout,
                        interval=0.25,
                    ),
                )
            ]
        )
    if opts.load_rate > 0:
        loadgen = [py, "-m", "rollout.sandbox.loadgen", "--url", info.service_url]
        loadgen += ["--users", str(opts.size.users), "--shops", str(opts.size.shops)]
        loadgen += ["--rate", str(opts.load_rate), "--state-dir", info.state_dir]
        table.append([Component("loadgen", loadgen)])
    return table


def _flag_stages(info: SandboxInfo, ports: dict[str, int]) -> list[list[Component]]:
    """With ``--flags unleash``: PostgreSQL, then Unleash on it, the example plans' flags made."""
    if info.unleash_url is None:
        return []
    state, base_url = Path(info.state_dir), info.unleash_url
    # The postgres user must reach its folder inside ours when we are root.
    state.chmod(0o711)
    data, sockets = init_cluster(state / "postgres")
    tokens = {
        "admin": f"*:*.sbx-{secrets.token_hex(16)}",
        "backend": f"{unleash.PROJECT}:{unleash.ENVIRONMENT}.sbx-{secrets.token_hex(16)}",
    }
    token_file = state / TOKENS_FILE
    token_file.touch(mode=0o600)
    token_file.write_text(json.dumps(tokens))
    database = f"postgres://{database_user()}@{HOST}:{ports['postgres']}/unleash"
    return [
        [
            Component(
                "postgres",
                postgres_argv(data, sockets, ports["postgres"]),
                ready=lambda: psql(ports["postgres"], "select 1"),
                what="PostgreSQL",
                after=lambda: _create_database(ports["postgres"], "unleash"),
            )
        ],
        [
            Component(
                "unleash",
                unleash.server_argv(info.state_dir),
                ready=unleash.answers(base_url, tokens["admin"]),
                what="Unleash",
                env=unleash.server_env(database, ports["unleash"], tokens["admin"], tokens["backend"]),
                after=lambda: unleash.create_flags(base_url, tokens["admin"], [info.flag, *COMPANIONS]),
            )
        ],
    ]


def _service_env(info: SandboxInfo) -> dict[str, str] | None:
    """The Unleash tokens the service's SDK reads, in its environment (never on its command line)."""
    if info.unleash_url is None:
        return None
    tokens = info.unleash_tokens()
    return {unleash.ADMIN_TOKEN_ENV: tokens["admin"], unleash.BACKEND_TOKEN_ENV: tokens["backend"]}


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


def _scraped(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with PrometheusClient(url, timeout=2) as prom:
                if not prom.query(f'up{{job="{SERVICE_JOB}"}} == 1'):
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
