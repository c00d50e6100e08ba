"""Notifications through real Prefect blocks to a local webhook receiver and a local SMTP server."""

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.schemas.objects import StateType
from prefect_email import EmailServerCredentials

from flows.outcomes import result_of
from flows.rollout_flow import rollout_flow
from flows.rollout_result import RolloutResult
from rollout.adapters.flags import FlagStore
from rollout.sandbox.processes import free_port
from rollout.sandbox.stack import SandboxInfo
from tests.integration.test_rollout_flow import PLAN
from tests.plans import PlanFiles

pytestmark = pytest.mark.integration

NOTIFY = """
notify:
  - block: custom-webhook/ops-webhook
    events: [started, step-passed, rolled-back, rollback-incomplete, promoted]
  - block: email-server-credentials/ops-smtp
    email_to: [oncall@example.com]
  - block: slack-webhook/unreachable
"""


class Receiver:
    """An HTTP server that answers 200 to every POST, as Slack's incoming webhooks do, and keeps them."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [b["text"] for b in self.bodies]


class Mailbox:
    """Messages an aiosmtpd server received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture()
def receivers(prefect_api: None) -> Iterator[tuple[Receiver, Mailbox]]:
    webhook, mailbox = Receiver(), Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    CustomWebhookNotificationBlock(
        name="ops", url=webhook.url, json_data={"text": "{{subject}}\n{{body}}"}
    ).save("ops-webhook", overwrite=True)
    EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=smtp.port, smtp_type="INSECURE").save(
        "ops-smtp", overwrite=True
    )
    # No route to Slack from here: every message to it fails, and must stop nothing.
    SlackWebhook(url="https://hooks.slack.com/services/T0000/B0000/XXXXXXXX").save(
        "unreachable", overwrite=True
    )
    yield webhook, mailbox
    smtp.stop()
    webhook.server.shutdown()


def notify_plan(plan_file: PlanFiles, notify: str = NOTIFY) -> str:
    """The flow tests' plan, telling ``notify``."""
    return str(plan_file.text(PLAN.format(extra_gate="", approval="") + notify))


def test_a_rolled_back_rollout_tells_the_webhook_and_the_mailbox_and_an_unreachable_slack_stops_nothing(
    receivers: tuple[Receiver, Mailbox],
    sandbox: SandboxInfo,
    flag_store: FlagStore,
    plan_file: PlanFiles,
) -> None:
    webhook, mailbox = receivers
    httpx.put(f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0})
    state = rollout_flow(plan_path=notify_plan(plan_file), targets=sandbox.targets(), return_state=True)
    result = result_of(state, RolloutResult)
    assert (state.type, state.name) == (StateType.FAILED, "RolledBack")
    subjects = [t.splitlines()[0] for t in webhook.texts()]
    assert subjects == [
        "[rollout] flow-test v2: rollout started",
        "[rollout] flow-test v2: step passed",  # the internal users' window
        "[rollout] flow-test v2: ROLLED BACK",
    ], subjects
    assert webhook.texts()[1].splitlines()[1] == "internal 1 user, 0%: no gates"  # its window has none
    rolled_back = webhook.texts()[2]
    assert f"flow-test: {result.reason}" in rolled_back and "> max 0.05" in rolled_back  # the gate's value
    assert "Severity: SEV2" in rolled_back and "flag USE_UNIFIED_ORDERS: ok" in rolled_back
    assert "Traffic 0 in " in rolled_back
    ((to, mail),) = mailbox.messages  # only the default events: this one
    assert to == ["oncall@example.com"]
    assert mail["Subject"] == "[rollout] flow-test v2: ROLLED BACK"
    assert "Steps:" in mail.get_payload()
    assert result.rollback is not None and result.rollback.ok


def test_a_notification_block_that_does_not_exist_stops_the_run_before_any_change(
    receivers: tuple[Receiver, Mailbox],
    sandbox: SandboxInfo,
    flag_store: FlagStore,
    plan_file: PlanFiles,
) -> None:
    before = flag_store.get("USE_UNIFIED_ORDERS").version
    plan = notify_plan(plan_file, "notify:\n  - block: slack-webhook/no-such-channel\n")
    state = rollout_flow(plan_path=plan, targets=sandbox.targets(), return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "InvalidInput")
    assert (state.message or "").startswith(
        "notify[0].block: there is no Prefect block 'slack-webhook/no-such-channel'"
    )
    assert flag_store.get("USE_UNIFIED_ORDERS").version == before
    assert webhook_untouched(receivers[0])


def webhook_untouched(webhook: Receiver) -> bool:
    return webhook.bodies == []
