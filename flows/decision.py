"""The Resume form a person answers: approve or reject (no default), a box per checklist item, a note."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from prefect.input import RunInput
from pydantic import ConfigDict, Field, create_model

from rollout.plan.model import checklist_field


def _require_ticks(schema: dict[str, Any], form: type[Any]) -> None:
    """With a checklist, the schema (which the server checks a Resume against) refuses an
    approval with a box unticked."""
    boxes = [checklist_field(item) for item in getattr(form, "checklist", ())]
    if boxes:
        schema["if"] = {"properties": {"decision": {"const": "approve"}}, "required": ["decision"]}
        schema["then"] = {"properties": {box: {"const": True} for box in boxes}, "required": boxes}


class Decision(RunInput):
    """A person's answer to an approval or an inconclusive window."""

    model_config = ConfigDict(json_schema_extra=_require_ticks)

    decision: Literal["approve", "reject"] = Field(
        description="approve: go on with the rollout; reject: roll it back. There is no default."
    )
    approver: str = Field(min_length=1, description="Who decides: recorded with the decision.")
    note: str = Field(default="", description="Why, for the record.")

    checklist: ClassVar[tuple[str, ...]] = ()
    """The items the approver must tick to approve (their fields are named by ``checklist_field``)."""

    @property
    def approved(self) -> bool:
        """Whether the answer is to go on."""
        return self.decision == "approve"

    def ticked(self) -> tuple[str, ...]:
        """The checklist items ticked."""
        return tuple(item for item in self.checklist if getattr(self, checklist_field(item), False) is True)

    def unticked(self) -> tuple[str, ...]:
        """The checklist items left unticked."""
        ticked = self.ticked()
        return tuple(item for item in self.checklist if item not in ticked)


def decision_form(checklist: Sequence[str], description: str) -> type[Decision]:
    """The form for one question: its description shown above it, one box per checklist item."""
    boxes: dict[str, Any] = {
        checklist_field(item): (
            bool,
            Field(default=False, title=item, description="Tick to confirm; every box is needed to approve."),
        )
        for item in checklist
    }
    form = create_model("Decision", __base__=Decision, **boxes)
    form.checklist = tuple(checklist)
    return form.with_initial_data(description=description)


def answer(
    decision: Literal["approve", "reject"], approver: str, note: str = "", ticked: Sequence[str] = ()
) -> dict[str, Any]:
    """The run input a Resume form would send: the decision and each ticked item's box."""
    return {"decision": decision, "approver": approver, "note": note} | {
        checklist_field(item): True for item in ticked
    }
