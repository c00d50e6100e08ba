"""A flow's outcome as its Prefect state, and back: the runs list tells what happened at a glance.

The rollout and rollback flows end in named states (``Promoted``, ``RolledBack``,
``NothingToDo``, ``Refused``...) whose message says why; their results ride in
the state's data. Callers that need the result (the CLI, a parent flow) run the
flow with ``return_state=True`` and take it back with :func:`result_of`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from rollout.errors import InputRejected, LeaseLost, RolloutBusy, RolloutError, RolloutRefused
from rollout.redact import redact

T = TypeVar("T")
MESSAGE_LIMIT = 2000
"""Longer messages are cut: the state's message is a summary; the logs and artifacts hold the rest."""


class RollbackRefused(InputRejected):
    """A rollback that would do harm unless forced (a promoted rollout), or that has nothing to act on."""


class Ended(Exception):
    """A failed run's outcome as Prefect wants a Failed state's data: an exception, here with the result.

    A worker's engine raises it once the state is set, so the run's log ends with what happened
    (``RolledBack: full-launch 25%: errors ...``) rather than with a TypeError about the data.
    """

    def __init__(self, summary: str, result: Any) -> None:
        super().__init__(summary, result)
        self.result = result

    def __str__(self) -> str:
        return str(self.args[0])


def _message(text: str) -> str:
    text = redact(text)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def completed(name: str, message: str, data: Any) -> State[Any]:
    """A Completed state named ``name``."""
    return Completed(name=name, message=_message(message), data=data)


def failed(name: str, message: str, data: Any) -> State[Any]:
    """A Failed state named ``name``; a result that is no exception rides in an :class:`Ended`."""
    said = _message(message)
    return Failed(
        name=name,
        message=said,
        data=data if isinstance(data, BaseException) else Ended(f"{name}: {said}", data),
    )


def refusal(error: RolloutError) -> State[Any]:
    """The Failed state of a run stopped before it changed anything; ``result_of`` raises ``error`` again."""
    if isinstance(error, RollbackRefused | RolloutBusy | RolloutRefused):
        name = "Refused"
    elif isinstance(error, LeaseLost):
        name = "Stopped"
    elif isinstance(error, InputRejected):
        name = "InvalidInput"
    else:
        name = "Failed"
    return failed(name, str(error), error)


def result_of(state: State[Any], kind: type[T]) -> T:
    """The flow's result whatever its final state; an error it stopped on is raised again."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, Ended):
        value = value.result
    if isinstance(value, BaseException):
        raise value
    if not isinstance(value, kind):
        raise TypeError(f"the run ended {state.name} without a {kind.__name__}: {state.message}")
    return value
