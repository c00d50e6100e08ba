"""Deploying a release by command or hook: real processes and a real HTTP receiver."""

import json
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rollout.adapters.deployer import DeployFailed, call_webhook, run_command, wait_until_serving
from rollout.clock import FakeClock
from rollout.errors import ServiceUnavailable, is_transient
from rollout.plan.model import DeployCommand, DeployWebhook

pytestmark = pytest.mark.integration
WRITE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2]); print('deployed', sys.argv[2])"


def test_the_version_is_one_argument_never_a_shell_word(tmp_path: Path) -> None:
    written = tmp_path / "deployed"
    command = DeployCommand(argv=[sys.executable, "-c", WRITE, str(written), "{version}"])
    sly = "v1; touch pwned $(touch pwned2)"
    said = run_command(command, sly, {})
    assert written.read_text() == sly
    assert not (tmp_path / "pwned").exists() and not Path("pwned2").exists()
    assert said.endswith(f"done (deployed {sly})")


def test_a_failing_or_hanging_command_is_a_failure_naming_its_last_words(tmp_path: Path) -> None:
    failing = DeployCommand(
        argv=[sys.executable, "-c", "print('pulling'); print('no such tag: {version}'); exit(3)"]
    )
    with pytest.raises(DeployFailed, match=r"exited with 3: pulling \| no such tag: v9"):
        run_command(failing, "v9", {})
    hanging = DeployCommand(argv=[sys.executable, "-c", "import time; time.sleep(30)"], timeout="1s")
    with pytest.raises(DeployFailed, match="did not finish within 1s"):
        run_command(hanging, "v9", {})
    with pytest.raises(DeployFailed, match="no-such-deployer: no such program"):
        run_command(DeployCommand(argv=["no-such-deployer", "{version}"]), "v9", {})


def test_the_commands_secrets_come_from_its_environment(tmp_path: Path) -> None:
    command = DeployCommand(argv=[sys.executable, "-c", "import os; print(os.environ['DEPLOY_TOKEN'][:3])"])
    assert run_command(command, "v1", {"DEPLOY_TOKEN": "tok-123"}).endswith("done (tok)")


class Hook:
    """A deploy hook answering ``status`` and keeping what it was sent."""

    def __init__(self, status: int) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append({"body": json.loads(body), "auth": self.headers.get("Authorization")})
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"nope" if status >= 400 else b"queued")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploy"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_deploy_hook_gets_the_version_in_its_body_and_4xx_fails_while_5xx_may_pass() -> None:
    hook = DeployWebhook.model_validate(
        {"url": "${env:HOOK}", "json": {"image": "registry/orders:{version}", "notes": ["back to {version}"]}}
    )
    ok = Hook(202)
    assert call_webhook(hook, "v1", ok.url, {"Authorization": "Bearer s"}).endswith("HTTP 202")
    assert ok.received == [
        {"body": {"image": "registry/orders:v1", "notes": ["back to v1"]}, "auth": "Bearer s"}
    ]
    with pytest.raises(DeployFailed, match="HTTP 400: nope"):
        call_webhook(hook, "v1", Hook(400).url, {})
    with pytest.raises(ServiceUnavailable) as unavailable:
        call_webhook(hook, "v1", Hook(503).url, {})
    assert is_transient(unavailable.value)


def test_after_the_deploy_the_rollback_waits_until_the_stable_release_is_served() -> None:
    versions = iter(["v2", "v2", "v1"])
    said = wait_until_serving(lambda: True, lambda: next(versions), "v1", timedelta(seconds=10), FakeClock())
    assert said == "healthy, running v1"
    with pytest.raises(DeployFailed, match="healthy, running v2 5s after the deploy, not yet on v1"):
        wait_until_serving(lambda: True, lambda: "v2", "v1", timedelta(seconds=5), FakeClock())
    with pytest.raises(DeployFailed, match="not healthy"):
        wait_until_serving(lambda: False, None, "v1", timedelta(seconds=3), FakeClock())
