"""Sending the plan's notifications through Prefect blocks: any notification block, or email.

The blocks hold the webhook URLs, tokens and SMTP passwords; the plan names them only.
A notification that cannot be delivered is logged as a warning and never stops a rollout
or a rollback. Before a rollout changes anything, every block it names must exist.
"""

from __future__ import annotations

import inspect
from email.message import EmailMessage
from typing import Any

from prefect import get_run_logger
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.settings import PREFECT_UI_URL
from prefect.utilities.asyncutils import run_coro_as_sync

from rollout.errors import InputRejected
from rollout.plan import Plan
from rollout.plan.model import Notification
from rollout.reporting.notifications import Notice, recipients

EMAIL_BLOCK = "email-server-credentials/"


class NotificationInvalid(InputRejected):
    """A block the plan names for its notifications does not exist or cannot send messages."""


def run_url(run_id: str) -> str | None:
    """The run's page in the Prefect UI, when the UI's address is known."""
    ui = PREFECT_UI_URL.value()
    return f"{str(ui).rstrip('/')}/runs/flow-run/{run_id}" if ui else None


def _load(entry: Notification, where: str) -> Any:
    try:
        block = Block.load(entry.block)
    except (ValueError, KeyError) as error:
        raise NotificationInvalid(
            f"{where}.block: there is no Prefect block {entry.block!r} ({error}): create it (in the UI, "
            "Blocks) or correct the name"
        ) from None
    email = entry.block.startswith(EMAIL_BLOCK)
    if not email and not isinstance(block, NotificationBlock):
        raise NotificationInvalid(
            f"{where}.block: {entry.block} is a {type(block).__name__}, which sends no messages: name a "
            "notification block (Slack, Microsoft Teams, custom webhook...) or email-server-credentials"
        )
    return block


def check_notifications(plan: Plan) -> None:
    """Every block the plan's ``notify`` names exists and can send: before anything changes."""
    for i, entry in enumerate(plan.notify):
        _load(entry, f"notify[{i}]")


def send(plan: Plan, notice: Notice) -> int:
    """Send ``notice`` to every ``notify`` entry that wants its event; returns how many were delivered."""
    logger = get_run_logger()
    delivered = 0
    for i in recipients(plan, notice.event):
        entry = plan.notify[i]
        try:
            # Loaded for each message, not once a run: a rollout lasts weeks, and a webhook or
            # password rotated meanwhile is used at once. A few messages a rollout cost nothing.
            _deliver(_load(entry, f"notify[{i}]"), entry, notice)
        except Exception as error:
            logger.warning("notification %s to %s not delivered: %s", notice.event, entry.block, error)
        else:
            delivered += 1
    return delivered


def _deliver(block: Any, entry: Notification, notice: Notice) -> None:
    if isinstance(block, NotificationBlock):
        with block.raise_on_failure():
            sent = block.notify(notice.body, notice.subject)
            if inspect.isawaitable(sent):  # a block with no synchronous notify
                run_coro_as_sync(sent)
        return
    message = EmailMessage()
    message["Subject"] = notice.subject
    message["From"] = block.username or "rollout@localhost"
    message["To"] = ", ".join(entry.email_to)
    message.set_content(notice.body)
    with block.get_server() as server:
        server.send_message(message)
