"""Prefect as operators run it: a self-hosted server, `make deploy`, a process worker, the REST API."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.postgres import Postgres, postgres_cluster
from tests.prefect_server import ROOT, answers_health, free_port, prefect_env, prefect_server, running

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
AUTH = ("operator", "n0t-the-default")
"""The basic-auth credentials of the shared operator stack's server."""


@dataclass
class Operator:
    """A server with the shipped deployments registered and a worker serving them."""

    api: str
    auth: tuple[str, str]
    env: dict[str, str]
    logs: Path
    workers: ExitStack = field(default_factory=ExitStack)
    worker_pid: int = 0
    server: ExitStack = field(default_factory=ExitStack)
    server_settings: dict[str, str] = field(default_factory=dict)
    ui: bool = False
    postgres: Postgres | None = None
    """The server's database, when it is PostgreSQL: a drill may stop it under the running server."""

    def start_server(self) -> None:
        """Start the server on its port (again, after :meth:`stop_server`: its database kept)."""
        port = int(self.api.rsplit(":", 1)[1].split("/")[0])
        self.server.enter_context(
            prefect_server(self.logs, ":".join(self.auth), self.server_settings, port=port, ui=self.ui)
        )

    def stop_server(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL), as an upgrade or a host restart does."""
        self.server.close()

    def start_worker(self, **settings: str) -> None:
        """Start a process worker on the rollout pool (another one, after :meth:`lose_host`).

        ``settings`` override the worker's environment: ``PREFECT_WORKER_QUERY_SECONDS="10"``, say,
        for a worker polling as a stock one does (the drills' polls every second, and so gives up
        on a server that is down after about 40 s instead of minutes).
        """
        argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "rollout-local"]
        worker = self.workers.enter_context(
            running([*argv, "--prefetch-seconds", "5"], {**self.env, **settings}, self.logs / "worker.log")
        )
        self.worker_pid = worker.pid

    def signal_worker_only(self) -> None:
        """SIGTERM the worker's own pid, as `kill PID` does (its children are not signalled)."""
        os.kill(self.worker_pid, signal.SIGTERM)

    def lose_host(self, *run_ids: str) -> None:
        """SIGKILL the worker and the processes of ``run_ids`` at once, as a lost host would."""
        children = [pid for run_id in run_ids for pid in flow_run_processes(run_id)]
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        os.killpg(self.worker_pid, signal.SIGKILL)

    def worker_alive(self) -> bool:
        """Whether the last worker started is still running."""
        try:
            os.kill(self.worker_pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{self.worker_pid}/stat").read_text().split()[2] != "Z"

    def restore(self) -> None:
        """Bring back what a drill took away and did not bring back: the database, the server, a worker."""
        if self.postgres is not None and self.postgres.server is None:
            self.postgres.start()
        if not answers_health(self.api):
            self.stop_server()
            self.start_server()
        if not self.worker_alive():
            self.start_worker()

    def settle(self, timeout: float = 120) -> None:
        """End every run still going, as a server of one's own going away would.

        A run left running (a drill's background rollout, a paused approval) would otherwise go
        on acting on the sandbox under the next tests. Running ones are cancelled through the worker
        (their processes stop), the rest are set Cancelled outright.
        """
        active = {"RUNNING", "PENDING", "PAUSED", "SCHEDULED", "CANCELLING"}
        body = {
            "flow_runs": {"state": {"type": {"any_": sorted(active)}}},
            "sort": "START_TIME_DESC",
            "limit": 200,
        }
        for run in self._post("flow_runs/filter", body):
            running = run["state_type"] in {"RUNNING", "CANCELLING"}
            self.set_state(run["id"], "CANCELLING" if running else "CANCELLED")
        deadline = time.monotonic() + timeout
        while left := self._post("flow_runs/filter", body):
            if time.monotonic() > deadline:
                for run in left:  # the worker did not stop them: stop what it would have
                    for pid in flow_run_processes(run["id"]):
                        os.kill(pid, signal.SIGKILL)
                    self.set_state(run["id"], "CANCELLED")
                break
            time.sleep(0.5)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        # A busy server answers 503 (SQLite locked under concurrent writes); Prefect's own client
        # retries those with backoff, and so does this one.
        for attempt in range(8):
            response = httpx.post(f"{self.api}/{path}", json=body, auth=self.auth, timeout=30)
            if response.status_code != 503:
                break
            time.sleep(0.5 * 2**attempt)
        response.raise_for_status()
        return response.json()

    def deployment_id(self, flow: str, name: str) -> str:
        """The id of deployment ``flow/name``."""
        response = httpx.get(f"{self.api}/deployments/name/{flow}/{name}", auth=self.auth, timeout=30)
        response.raise_for_status()
        return str(response.json()["id"])

    def pause(self, flow: str, deployment: str) -> None:
        """Pause a deployment's schedules, as the UI's toggle does (runs can still be started by hand)."""
        response = httpx.patch(
            f"{self.api}/deployments/{self.deployment_id(flow, deployment)}",
            json={"paused": True},
            auth=self.auth,
            timeout=30,
        )
        response.raise_for_status()

    def start(self, flow: str, deployment: str, parameters: dict[str, Any]) -> str:
        """Start a run of a deployment as the UI's Run button or the REST API does; returns its id."""
        run = self._post(
            f"deployments/{self.deployment_id(flow, deployment)}/create_flow_run", {"parameters": parameters}
        )
        return str(run["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        """The flow run as the API shows it."""
        response = httpx.get(f"{self.api}/flow_runs/{run_id}", auth=self.auth, timeout=30)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def wait(self, run_id: str, types: set[str] = FINAL, timeout: float = 240) -> dict[str, Any]:
        """Wait until the run's state type is one of ``types``; returns the run."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["state"] is not None and run["state"]["type"] in types:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run['state']}, not {types}:\n{self.tail()}")
            time.sleep(0.5)

    def runs_of(self, flow: str) -> list[dict[str, Any]]:
        """The newest 200 runs of ``flow``, oldest first (a shared server holds many tests' runs)."""
        body = {"flows": {"name": {"any_": [flow]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 200}
        runs: list[dict[str, Any]] = self._post("flow_runs/filter", body)
        return runs[::-1]

    def log_lines(self, run_id: str) -> list[str]:
        """The run's log messages, oldest first."""
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
        return [log["message"] for log in self._post("logs/filter", body)]

    def resume(self, run_id: str, run_input: dict[str, Any] | None = None) -> None:
        """Resume a paused or suspended run, as the UI's Resume form does (with its input)."""
        self._post(f"flow_runs/{run_id}/resume", {"run_input": run_input} if run_input else {})

    def set_state(self, run_id: str, state_type: str) -> None:
        """Propose a state, as the UI's Cancel does with CANCELLING."""
        self._post(f"flow_runs/{run_id}/set_state", {"state": {"type": state_type}, "force": True})

    def tail(self, chars: int = 4000) -> str:
        """The end of the worker's and the server's logs."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
            for log in sorted(self.logs.glob("*.log"))
        )


def flow_run_processes(run_id: str) -> list[int]:
    """The pids of the processes running flow run ``run_id`` (none while it is parked)."""
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def flow_run_process(run_id: str) -> int:
    """The pid of the process a worker runs flow run ``run_id`` in."""
    found = flow_run_processes(run_id)
    if not found:
        raise AssertionError(f"no process runs flow run {run_id}")
    return found[0]


def kill(pid: int) -> None:
    """SIGKILL ``pid``, as the OOM killer or a lost host would."""
    os.kill(pid, signal.SIGKILL)


def make_deploy(env: dict[str, str]) -> None:
    """`make deploy` against the server ``env`` points at, as an operator runs it."""
    done = subprocess.run(
        ["make", "--no-print-directory", "deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@contextmanager
def operator(
    workdir: Path,
    auth: tuple[str, str],
    extra: dict[str, str] | None = None,
    *,
    postgres: bool = False,
    reconciler: bool = False,
    ui: bool = False,
) -> Iterator[Operator]:
    """A self-hosted server, `make deploy` of the shipped prefect.yaml, and a process worker.

    With ``postgres``, the server keeps its database in PostgreSQL, as a team running many
    rollouts at once would (SQLite answers 503 under concurrent writes). The reconciler's
    schedule is paused unless ``reconciler``: its passes act on every rollout in the sandbox,
    other tests' included, so a test that is not about it starts its passes itself.
    """
    settings = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    with ExitStack() as stack:
        database = stack.enter_context(postgres_cluster()) if postgres else None
        if database is not None:
            settings["PREFECT_API_DATABASE_CONNECTION_URL"] = database.url
        ops = Operator(
            f"http://127.0.0.1:{free_port()}/api",
            auth,
            {},
            workdir,
            server_settings=settings,
            ui=ui,
            postgres=database,
        )
        stack.enter_context(ops.server)
        ops.start_server()
        api = ops.api
        ops.env = env = prefect_env(
            workdir / "client",
            {
                "PREFECT_API_URL": api,
                "PREFECT_API_AUTH_STRING": ":".join(auth),
                "HOME": str(workdir / "home"),
                "ROLLOUT_HOME": str(ROOT),
                "ROLLOUT_REPORTS_DIR": str(workdir / "reports"),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                **(extra or {}),
            },
        )
        make_deploy(env)
        stack.enter_context(ops.workers)
        ops.start_worker()
        if not reconciler:
            ops.pause("reconcile", "rollout-reconcile")
        deadline = time.monotonic() + 60
        while not ops._post("automations/filter", {}):
            assert time.monotonic() < deadline, "no automation registered"
            time.sleep(0.5)
        yield ops
