"""Secret references inside plan strings: ``${env:NAME}`` and ``${secret:block-name}``.

Plans never hold secrets. A field that may carry one (a connection string, a
token) holds a template instead, for instance
``mongodb://app:${env:ORDERS_DB_PASSWORD}@db:27017``; the reference is resolved
at run time by a :class:`SecretResolver`: environment variables here, Prefect
Secret blocks in the ``tasks`` layer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Annotated, Protocol
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator

from rollout.errors import SecretUnavailable
from rollout.redact import register

REFERENCE = re.compile(r"\$\{(env|secret):([A-Za-z0-9_.\-/]+)\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")


class SecretResolver(Protocol):
    """Looks up the value behind one reference."""

    def __call__(self, kind: str, name: str) -> str:
        """Return the value of reference ``kind:name`` or raise :class:`SecretUnavailable`."""
        ...


def env_resolver(kind: str, name: str) -> str:
    """Resolve ``${env:NAME}``; refuse ``${secret:...}``, which needs Prefect."""
    if kind != "env":
        raise SecretUnavailable(
            f"${{{kind}:{name}}} needs a Prefect Secret block; run through a flow or use ${{env:...}}"
        )
    try:
        return os.environ[name]
    except KeyError:
        raise SecretUnavailable(
            f"environment variable {name} is not set; export it before running the plan"
        ) from None


def references(template: str) -> list[tuple[str, str]]:
    """List the ``(kind, name)`` references inside ``template``."""
    return REFERENCE.findall(template)


def resolve(template: str, resolver: SecretResolver = env_resolver) -> str:
    """Replace every reference in ``template`` with its value."""

    def value(match: re.Match[str]) -> str:
        secret = resolver(match.group(1), match.group(2))
        register(secret)
        register(quote(secret, safe=""))  # as it appears inside a URL
        return secret

    return REFERENCE.sub(value, template)


def _check_references(value: str) -> str:
    for match in _ANY_REFERENCE.finditer(value):
        if not REFERENCE.fullmatch(match.group(0)):
            raise ValueError(
                f"{match.group(0)!r} is not a secret reference; write ${{env:NAME}} or ${{secret:block-name}}"
            )
    return value


def _no_inline_password(value: str) -> str:
    _check_references(value)
    if "://" in value:
        password = urlsplit(value).password
        if password and not REFERENCE.fullmatch(password):
            raise ValueError(
                "holds a password inline; replace it with a reference such as "
                "${env:DB_PASSWORD} or ${secret:db-password}"
            )
    return value


def _only_reference(value: str) -> str:
    if not REFERENCE.fullmatch(value):
        raise ValueError(
            "must be a reference, never the secret itself: write ${env:NAME} or ${secret:block-name}"
        )
    return value


ConnectionString = Annotated[str, AfterValidator(_no_inline_password)]
"""A URL that may name credentials only through references."""

SecretValue = Annotated[str, AfterValidator(_only_reference)]
"""A value that is a secret as a whole (a token, a key): always a single reference."""

Resolver = Callable[[str, str], str]
