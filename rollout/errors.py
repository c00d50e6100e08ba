"""One error hierarchy for the whole project.

Every adapter wraps its SDK's exceptions in one of these, raised ``from`` the
original, so callers decide on retries by type alone: a :class:`TransientError`
may succeed if tried again (a dropped connection, a 5xx), a
:class:`PermanentError` will not (bad input, a missing object, a refused write).
"""

from __future__ import annotations

from dataclasses import dataclass


class RolloutError(Exception):
    """Base of every error this project raises on purpose; its message never shows a secret."""

    def __str__(self) -> str:
        from rollout.redact import redact

        return redact(super().__str__())


class TransientError(RolloutError):
    """A failure that may go away if the same call is tried again."""


class PermanentError(RolloutError):
    """A failure that trying again cannot fix."""


class ServiceUnavailable(TransientError):
    """An external service could not be reached or answered with a server error."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service} unavailable: {detail}")
        self.service = service
        self.detail = detail


class ServiceRejected(PermanentError):
    """An external service understood the request and refused it."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service} rejected the request: {detail}")
        self.service = service
        self.detail = detail


class InputRejected(PermanentError):
    """What the user gave (a plan, a URI, an option) cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with user input: where it is and what to do about it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PlanInvalid(InputRejected):
    """A plan that cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class GateQueryInvalid(InputRejected):
    """A gate's query is refused by Prometheus (a PromQL error)."""


class SecretUnavailable(PermanentError):
    """A secret the plan references could not be resolved."""


class SandboxError(PermanentError):
    """The local sandbox could not be started or stopped."""


class PortInUse(SandboxError):
    """A port the sandbox was told to use is taken."""


def is_transient(error: BaseException) -> bool:
    """Tell whether ``error`` is worth retrying."""
    return isinstance(error, TransientError)


class RolloutBusy(PermanentError):
    """Another run holds the plan: only one rollout of a plan runs at a time."""


class RolloutRefused(PermanentError):
    """A start that would replay a finished rollout, downgrade the release or cut a flag, unasked."""


class LeaseLost(PermanentError):
    """The run no longer holds its plan (a rollback or another run took it over): it must stop."""
