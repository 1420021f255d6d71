"""Map LangGraph's stream (tasks, messages, custom, updates) to the facade's events (README: SSE)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk
from typing_extensions import TypedDict

from graph.approval import interrupt_proposal
from tools.schemas import JsonObject

NODES = {"load_context", "reason", "tools", "risk_gate", "human_approval", "execute"}


class Event(TypedDict):
    """One event of a run as the facade streams it (SSE: `event: <event>`, `data: <data as JSON>`):
    node, token, tool, tool_result, approval_required, recovered, final or error."""

    event: str
    data: JsonObject


def to_events(mode: str, chunk: Any) -> list[Event]:
    """Events for one stream item; interrupts become `approval_required`."""
    if mode == "tasks" and isinstance(chunk, dict) and "input" in chunk and chunk.get("name") in NODES:
        return [{"event": "node", "data": {"node": chunk["name"]}}]
    if mode == "messages":
        message, metadata = chunk
        if (
            isinstance(message, AIMessageChunk)
            and metadata.get("langgraph_node") == "reason"
            and isinstance(message.content, str)
            and message.content
        ):
            return [{"event": "token", "data": {"text": message.content}}]
        return []
    if mode == "custom" and isinstance(chunk, dict) and "event" in chunk:  # the nodes' own tool events
        return [Event(event=str(chunk["event"]), data=chunk.get("data") or {})]
    if mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
        events: list[Event] = []
        for item in chunk["__interrupt__"]:
            proposal = interrupt_proposal(getattr(item, "value", None))
            if proposal is not None:
                events.append(Event(event="approval_required", data={"proposal": proposal}))
        return events
    return []
