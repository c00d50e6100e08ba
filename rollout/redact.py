"""Secrets never leave the process in clear: every resolved secret is masked in logs, errors and reports.

A secret enters the process only through :func:`rollout.plan.secrets.resolve`,
which hands each value to :func:`register`. From then on :func:`redact` replaces
it with ``***`` in any text, every log record's message is redacted when it is
formatted, and our errors redact their own messages.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

MASK = "***"
MIN_LENGTH = 4
"""Shorter values are not masked: they would blank out ordinary words and digits."""

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register(value: str) -> None:
    """Mask ``value`` from now on (and make sure log records are redacted)."""
    if len(value) < MIN_LENGTH:
        return
    with _lock:
        _secrets.add(value)
    _install_log_redaction()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``, longest first (none left half-masked)."""
    if not _secrets:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _RedactedRecord(logging.LogRecord):
    """A log record whose message, exception text and stack are redacted, whichever handler formats it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.exc_info:
            # Formatters reuse ``exc_text`` when it is set: format the traceback once, redacted.
            self.exc_text = redact(logging.Formatter().formatException(self.exc_info))
        if self.stack_info:
            self.stack_info = redact(self.stack_info)

    def getMessage(self) -> str:
        return redact(super().getMessage())


def _install_log_redaction() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    logging.setLogRecordFactory(_RedactedRecord)
