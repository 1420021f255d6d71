"""JSON-serialisable shapes the facade returns: chat results, session views, checkpoints (the approval data
in them is typed once, in graph.approval)."""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import BaseModel
from typing_extensions import TypedDict

from graph.approval import Outcome, Proposal, VerdictSummary
from tools.schemas import JsonObject


class ChatResult(BaseModel):
    """The seed's /api/chat response plus the proposal awaiting approval, if any."""

    response: str
    tools_used: list[str] = []
    signal: JsonObject | None = None
    pending_approval: Proposal | None = None
    # What this run's order did at the broker (executed / failed / unknown), if it sent one.
    order: Outcome | None = None
    # The risk gate's verdict in this run ({passed, reasons}), if a proposal went through it.
    verdict: VerdictSummary | None = None
    # True when this answer repeats how an earlier decision ended (a decision sent again): nothing ran.
    replayed: bool = False


class ToolCallShown(TypedDict):
    name: str
    args: JsonObject


class ChatMessage(TypedDict):
    """One message of a session as clients show it: a tool result has its tool's name, an assistant's
    message its tool calls."""

    role: Literal["user", "assistant", "tool"]
    content: str
    name: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCallShown]]


class SessionState(BaseModel):
    session_id: str
    messages: list[ChatMessage]
    pending_approval: Proposal | None = None
    # The last run stopped before its end (a crash); it is completed at the next access or by the start sweep.
    interrupted_run: bool = False
    last_signal: JsonObject | None = None
    checkpoint_id: str | None = None


class CheckpointInfo(BaseModel):
    checkpoint_id: str
    created_at: str | None = None
    step: int | None = None
    next: list[str] = []
    source: str | None = None
