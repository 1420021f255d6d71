"""Helpers over the message list: find the open tool calls, cut history at turn boundaries, render results."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolCall,
    ToolMessage,
)

from graph.answers import facts_of
from prompts.system import position_line
from tools.schemas import JsonObject


def text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)


def last_ai(messages: Sequence[AnyMessage]) -> AIMessage | None:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return message
    return None


def open_tool_calls(messages: Sequence[AnyMessage]) -> list[ToolCall]:
    """Tool calls of the last AI message that no ToolMessage has answered yet."""
    ai = last_ai(messages)
    if ai is None or not ai.tool_calls:
        return []
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [c for c in ai.tool_calls if c["id"] not in answered]


def turn_start(messages: Sequence[AnyMessage]) -> int:
    """Index of the last human message (the start of the current turn)."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return 0


def keep_recent(
    messages: Sequence[AnyMessage],
    max_messages: int,
    counts: Callable[[BaseMessage], bool] | None = None,
) -> list[AnyMessage]:
    """The newest messages, at most `max_messages` of those that `counts` (all by default), starting on a
    human message so tool groups stay whole."""
    weigh = counts or (lambda _: True)
    total = sum(1 for m in messages if weigh(m))
    if total <= max_messages:
        return list(messages)
    for i, message in enumerate(messages):
        if isinstance(message, HumanMessage) and total <= max_messages:
            return list(messages[i:])
        total -= 1 if weigh(message) else 0
    return list(messages[turn_start(messages) :])


def removals(
    messages: Sequence[AnyMessage], max_messages: int, counts: Callable[[BaseMessage], bool] | None = None
) -> list[RemoveMessage]:
    """RemoveMessage updates that bound the stored conversation (checkpoints stay small turn after turn);
    `counts` as in `keep_recent`."""
    kept = {id(m) for m in keep_recent(messages, max_messages, counts)}
    return [RemoveMessage(id=m.id) for m in messages if id(m) not in kept and m.id]


def tool_results_since_turn(messages: Sequence[AnyMessage]) -> list[ToolMessage]:
    start = turn_start(messages)
    return [m for m in messages[start:] if isinstance(m, ToolMessage)]


def parse_json(content: str) -> Any:
    try:
        return json.loads(content)
    except (TypeError, ValueError):
        return None


def render_message(message: ToolMessage) -> str:
    """A tool message as render_result shows it; the broker's answer to an order is known by its fact."""
    sent = any(f["kind"] == "executed" or f.get("category") == "broker" for f in facts_of(message))
    return render_result(str(message.name), text(message), sent)


def render_result(name: str, content: str, sent: bool = False) -> str:
    """A plain-text rendering of a tool result for turns answered without the model (slash commands);
    `sent`: the broker's answer to an order, a line for the trader then the JSON details for the model."""
    if sent:
        return content.split("\n", 1)[0]
    data = parse_json(content)
    if not isinstance(data, dict):
        return content
    if name == "get_ml_signal":
        return _render_signal(data)
    if name == "get_portfolio":
        return _render_portfolio(data)
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _render_signal(s: JsonObject) -> str:
    lines = [
        f"Signal {s.get('symbol')} {s.get('timeframe')}: {s.get('action')} "
        f"(confidence {float(s.get('confidence') or 0):.0%}, source {s.get('source')})",
        (
            f"Entry {s.get('entry_price')}  SL {s.get('stop_loss')}  TP {s.get('take_profit')}  "
            f"R:R {s.get('risk_reward')}"
            if s.get("entry_price") is not None
            else "No trade levels: the signal is to wait."
        ),
        f"AMD phase {s.get('amd_phase')}, killzone {s.get('killzone')}",
    ]
    lines += [f"- {r}" for r in s.get("reasoning") or []]
    return "\n".join(lines)


def _render_portfolio(p: JsonObject) -> str:
    lines = [
        f"Balance {p.get('balance')}  Equity {p.get('equity')}  Free margin {p.get('free_margin')}  "
        f"Daily P&L {p.get('daily_pnl')}"
    ]
    positions = p.get("positions") or []
    if not positions:
        lines.append("No open positions.")
    lines += [position_line(pos) for pos in positions]
    return "\n".join(lines)
