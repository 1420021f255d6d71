"""Request bodies of the HTTP API (responses are the facade's ChatResult, SessionState, CheckpointInfo)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph.approval import Decision
from graph.approval_reply import EDIT_ARGS, ApprovalEdits
from server.api.deps import SESSION_ID_PATTERN


def _edits_schema(schema: dict[str, Any]) -> None:
    """An edit's fields are numbers (null is not a change), and one at least is there."""
    schema["minProperties"] = 1
    for field in schema.get("properties", {}).values():
        number = next((a for a in field.pop("anyOf", []) if a.get("type") != "null"), None)
        if number is not None:
            field.update(number)
        field.pop("default", None)


class ChatRequest(BaseModel):
    """The seed's /api/chat body."""

    message: str = Field(min_length=1, description="what the trader says, or a slash command like /signal")
    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="conversation id chosen by the client")
    symbol: str | None = Field(
        None, max_length=20, description="the symbol the session is about (omitted: the session's own)"
    )


class _Decision(BaseModel):
    """The trader's answer to a pending proposal (one model per `decision`, so the schema says the rules)."""

    # Bad input is refused here with 422 before the graph runs, so the proposal stays pending
    # (graph check_decision applies the same ApprovalEdits, but an invalid decision there cancels it).
    model_config = ConfigDict(allow_inf_nan=False)

    proposal_id: str = Field(min_length=1, max_length=100)
    decision: Literal["approve", "edit", "reject"]
    reason: str = Field("", max_length=1000)

    def as_decision(self) -> Decision:
        """The graph's Decision: edits as {field: float}, {} for none."""
        edits = self.edits.changes() if isinstance(self, EditDecision) else {}
        return Decision(proposal_id=self.proposal_id, decision=self.decision, edits=edits, reason=self.reason)


class NoEdits(BaseModel):
    """`edits` with approve or reject: absent, `{}` or nulls (the web page and `copilot chat` send `{}`)."""

    model_config = ConfigDict(extra="forbid")

    size_lots: None = None
    stop_loss: None = None
    take_profit: None = None

    @model_validator(mode="before")
    @classmethod
    def _no_changes(cls, value: object) -> object:
        if isinstance(value, dict) and any(value.get(name) is not None for name in EDIT_ARGS):
            raise ValueError(
                "edits are only for decision 'edit': send decision 'edit' to change the proposal (it goes "
                "back through the risk gate), then approve the new one"
            )
        return value


class Edits(ApprovalEdits):
    """`edits` with decision edit: at least one of size_lots, stop_loss, take_profit, each a number."""

    model_config = ConfigDict(json_schema_extra=_edits_schema)

    @model_validator(mode="before")
    @classmethod
    def _numbers_only(cls, value: object) -> object:
        if isinstance(value, dict) and any(value.get(name, 0) is None for name in EDIT_ARGS):
            raise ValueError("null is not a change: leave out the fields that stay as proposed")
        return value

    @model_validator(mode="after")
    def _some_change(self) -> Edits:
        if not self.changes():
            raise ValueError(f"decision 'edit' needs edits with at least one of {', '.join(EDIT_ARGS)}")
        return self


class ApproveDecision(_Decision):
    decision: Literal["approve"]
    edits: NoEdits = Field(default_factory=NoEdits)


class EditDecision(_Decision):
    decision: Literal["edit"]
    edits: Edits = Field(description="what to change; the edited proposal goes back through the risk gate")


class RejectDecision(_Decision):
    decision: Literal["reject"]
    edits: NoEdits = Field(default_factory=NoEdits)


DecisionRequest = Annotated[ApproveDecision | EditDecision | RejectDecision, Field(discriminator="decision")]


class ClearRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class StatusResponse(BaseModel):
    status: str
    session_id: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    llm_status: str  # "ok" | "down" | "model_missing" | "failing" (recent chat calls failed) | "starting"
    redis_status: str
    llm_error: str | None = None  # only when failing: "<category>: <message>" of the latest chat failure


class SessionList(BaseModel):
    sessions: list[str]
