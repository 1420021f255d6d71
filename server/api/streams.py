"""What the Server-Sent Events routes send, as models: each frame is `event: NAME` and `data: JSON`.

`sse_response` declares a stream in the OpenAPI document the way FastAPI declares its own SSE routes
(`text/event-stream` with an `itemSchema` per frame), one alternative per event name with its payload model;
`docs.py` adds the payload models to the document's components.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, JsonValue

from graph.approval import Proposal
from graph.schemas import ChatResult
from tools.schemas import Alert, Portfolio


class NodeEvent(BaseModel):
    node: str  # the graph node that starts: load_context, reason, tools, risk_gate, human_approval, execute


class TokenEvent(BaseModel):
    text: str  # the next piece of the model's answer


class ToolEvent(BaseModel):
    name: str
    args: dict[str, JsonValue]


class ToolResultEvent(BaseModel):
    name: str
    ok: bool


class ApprovalRequiredEvent(BaseModel):
    proposal: Proposal


class ProblemEvent(BaseModel):
    message: str


class MarketEvent(BaseModel):
    """The page's symbol: its quote about once a second, or once why there is none (`available` false)."""

    symbol: str
    available: bool
    now: str  # the market clock's now
    bid: float | None = None
    ask: float | None = None
    quote_time: str | None = None
    reason: str | None = None  # when not available: a stale history, no data, an unknown name


class FillEvent(BaseModel):
    """A fill of the account (the ledger's fields, as text); `id:` is its entry in the notice stream."""

    ticket: str
    kind: Literal["open", "sl", "tp", "manual"]
    symbol: str | None = None
    side: str | None = None
    lots: str | None = None
    price: str | None = None
    time: str | None = None
    pnl_usd: str | None = None


RUN_EVENTS: dict[str, type[BaseModel]] = {
    "node": NodeEvent,
    "token": TokenEvent,
    "tool": ToolEvent,
    "tool_result": ToolResultEvent,
    "approval_required": ApprovalRequiredEvent,
    "recovered": ChatResult,  # an interrupted run of this session, completed first
    "final": ChatResult,  # the last frame: what /api/chat answers
    "error": ProblemEvent,  # the last frame when the run failed or was cancelled
}
LIVE_EVENTS: dict[str, type[BaseModel]] = {
    "market": MarketEvent,
    "portfolio": Portfolio,
    "fill": FillEvent,
    "alert": Alert,
    "problem": ProblemEvent,
}
STREAM_MODELS: set[type[BaseModel]] = {*RUN_EVENTS.values(), *LIVE_EVENTS.values()}


def _frame(name: str, model: type[BaseModel]) -> dict[str, Any]:
    data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"},
    }
    return {
        "type": "object",
        "properties": {"event": {"const": name}, "data": data, "id": {"type": "string"}},
        "required": ["event", "data"],
    }


def sse_response(events: Mapping[str, type[BaseModel]], description: str) -> dict[str, Any]:
    """A 200 answered as `text/event-stream`, its frames one of `events` (name → payload model)."""
    frames = [_frame(name, model) for name, model in events.items()]
    return {"description": description, "content": {"text/event-stream": {"itemSchema": {"oneOf": frames}}}}
