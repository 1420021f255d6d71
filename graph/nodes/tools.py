"""tools: run the read-only tool calls of the last model message; proposal calls are left for the gate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.messages import open_tool_calls, parse_json
from graph.nodes.load_context import Node
from graph.state import State
from tools.trading_tools import PROPOSAL_TOOLS


async def run_call(tools: dict[str, BaseTool], call: dict[str, Any]) -> ToolMessage:
    """One tool call -> its ToolMessage; unknown tools and failures come back as readable errors."""
    tool = tools.get(call["name"])
    if tool is None:
        known = ", ".join(sorted(tools))
        return ToolMessage(
            f"Error: unknown tool {call['name']!r}; tools: {known}",
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
        )
    try:
        result = await tool.ainvoke({**call, "type": "tool_call"})
    except Exception as exc:  # a broken tool must not kill the run; the model reads the error
        return ToolMessage(f"Error: {exc}", tool_call_id=call["id"], name=call["name"], status="error")
    if isinstance(result, ToolMessage):
        if isinstance(result.content, str) and result.content.startswith("Error"):
            result.status = "error"
        return result
    content = result if isinstance(result, str) else json.dumps(result, default=str)
    return ToolMessage(content, tool_call_id=call["id"], name=call["name"])


def make_tools_node(deps: Deps) -> Node:
    async def tools(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        calls = [c for c in open_tool_calls(state.get("messages", [])) if c["name"] not in PROPOSAL_TOOLS]
        write = get_stream_writer()
        for call in calls:
            write({"event": "tool", "data": {"name": call["name"], "args": call.get("args", {})}})
        tools = {t.name: t for t in deps.tools(ctx.account_id)}
        if deps.settings.tools.parallel_execution:
            results = list(await asyncio.gather(*(run_call(tools, c) for c in calls)))
        else:
            results = [await run_call(tools, c) for c in calls]
        update: dict[str, Any] = {
            "messages": results,
            "tool_rounds": state.get("tool_rounds", 0) + 1,
            "tools_used": list(state.get("tools_used", [])) + [c["name"] for c in calls],
        }
        for message in results:
            ok = message.status != "error"
            write({"event": "tool_result", "data": {"name": message.name, "ok": ok}})
            data = parse_json(message.content) if isinstance(message.content, str) else None
            if ok and message.name == "get_ml_signal" and isinstance(data, dict):
                update["turn_signal"] = update["last_signal"] = data
        return update

    return tools
