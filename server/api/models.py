"""Request bodies of the HTTP API (responses are the facade's ChatResult, SessionState, CheckpointInfo)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import SESSION_ID_PATTERN


class ChatRequest(BaseModel):
    """The seed's /api/chat body."""

    message: str = Field(min_length=1, description="what the trader says, or a slash command like /signal")
    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="conversation id chosen by the client")
    symbol: str | None = Field("XAUUSD", max_length=20, description="the symbol the session is about")


class DecisionRequest(BaseModel):
    """The trader's answer to a pending proposal."""

    # NaN/Infinity edits are refused at the door (graph check_decision refuses them too).
    model_config = ConfigDict(allow_inf_nan=False)

    proposal_id: str = Field(min_length=1, max_length=100)
    decision: Literal["approve", "edit", "reject"]
    edits: dict[str, Any] = Field(
        default_factory=dict, description="for edit: any of size_lots, stop_loss, take_profit"
    )
    reason: str = Field("", max_length=1000)

    def as_decision(self) -> dict[str, Any]:
        return self.model_dump()


class ClearRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)


class StatusResponse(BaseModel):
    status: str
    session_id: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    llm_status: str
    redis_status: str


class SessionList(BaseModel):
    sessions: list[str]
