"""Request bodies of the HTTP API (responses are the facade's ChatResult, SessionState, CheckpointInfo)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph.approval import Decision
from graph.nodes.human_approval import EDIT_ARGS, ApprovalEdits
from server.api.deps import SESSION_ID_PATTERN


class ChatRequest(BaseModel):
    """The seed's /api/chat body."""

    message: str = Field(min_length=1, description="what the trader says, or a slash command like /signal")
    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="conversation id chosen by the client")
    symbol: str | None = Field(
        None, max_length=20, description="the symbol the session is about (omitted: the session's own)"
    )


class DecisionRequest(BaseModel):
    """The trader's answer to a pending proposal."""

    # Bad input is refused here with 422 before the graph runs, so the proposal stays pending
    # (graph check_decision applies the same ApprovalEdits, but an invalid decision there cancels it).
    model_config = ConfigDict(allow_inf_nan=False)

    proposal_id: str = Field(min_length=1, max_length=100)
    decision: Literal["approve", "edit", "reject"]
    edits: ApprovalEdits = Field(
        default_factory=ApprovalEdits,
        description="for decision 'edit' only: at least one of size_lots, stop_loss, take_profit",
    )
    reason: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _edits_match_the_decision(self) -> DecisionRequest:
        changes = self.edits.changes()
        if self.decision == "edit" and not changes:
            raise ValueError(f"decision 'edit' needs edits with at least one of {', '.join(EDIT_ARGS)}")
        if self.decision != "edit" and changes:
            raise ValueError(
                f"edits are only for decision 'edit', not {self.decision!r}: send decision 'edit' to change "
                "the proposal (it goes back through the risk gate), then approve the new one"
            )
        return self

    def as_decision(self) -> Decision:
        """The graph's Decision: edits as {field: float}, {} for none."""
        changes = self.edits.changes()
        return Decision(
            proposal_id=self.proposal_id, decision=self.decision, edits=changes, reason=self.reason
        )


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
