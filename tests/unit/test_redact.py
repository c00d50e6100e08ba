import logging

import pytest

from rollout.errors import ServiceUnavailable
from rollout.plan.secrets import resolve

SECRET = "s3cr3t/Value+42"


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDACT_TEST_SECRET", SECRET)


def test_a_resolved_secret_is_masked_in_our_errors_in_clear_and_url_encoded() -> None:
    uri = resolve("mongodb://app:${env:REDACT_TEST_SECRET}@db:27017", lambda kind, name: SECRET)
    assert SECRET in uri
    error = ServiceUnavailable("MongoDB", f"cannot reach {uri} (also as s3cr3t%2FValue%2B42)")
    assert SECRET not in str(error) and "s3cr3t%2FValue%2B42" not in str(error)
    assert "mongodb://app:***@db:27017" in str(error)


def test_log_messages_and_tracebacks_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    resolve("${env:REDACT_TEST_SECRET}", lambda kind, name: SECRET)
    logger = logging.getLogger("redact-test")
    handler = logging.StreamHandler()
    formatted: list[str] = []
    handler.emit = lambda record: formatted.append(handler.format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("token is %s", SECRET)
        try:
            raise ValueError(f"third-party error quoting {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(formatted) + caplog.text
    assert "token is ***" in text
    assert SECRET not in text
