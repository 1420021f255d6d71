"""tools: run the read-only tool calls of the last model message; proposal calls are left for the gate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.config import get_config, get_stream_writer
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime

from graph.deps import Deps, Node
from graph.messages import open_tool_calls
from graph.state import State
from tools.context import Context
from tools.protocols import ServiceError
from tools.trading_tools import PROPOSAL_TOOLS

log = logging.getLogger(__name__)


def tool_error(error: Exception) -> str:
    """What the model reads when a tool fails (ToolNode marks the result status="error"): a service's refusal
    is news for the model; anything else is a bug, logged as well, and must not kill the run either."""
    if not isinstance(error, ServiceError):
        log.warning("tool failed", exc_info=error)
    return f"Error: {error}"


def tool_runner(tools: Sequence[BaseTool]) -> ToolNode:
    """LangGraph's ToolNode over the model's tools: it validates the arguments, injects the runtime (the
    account), answers an unknown tool name with the list of known tools and turns failures into error
    results (`tool_error`). Given all the tools the model is bound with, so that list is complete; proposal
    calls never reach it."""
    return ToolNode(tools, handle_tool_errors=tool_error)


def make_tools_node(deps: Deps) -> Node:
    runner = tool_runner(deps.tools)

    async def run(calls: list[ToolCall]) -> list[ToolMessage]:
        # The node's own config carries the graph's runtime (its context names the account) to the tools.
        output = await runner.ainvoke(calls, get_config())
        return cast(list[ToolMessage], output["messages"])

    async def tools(state: State, runtime: Runtime[Context]) -> State:
        # AIMessage gives every tool call its "type": ToolNode takes them as they are.
        calls = [c for c in open_tool_calls(state.get("messages", [])) if c["name"] not in PROPOSAL_TOOLS]
        write = get_stream_writer()
        for call in calls:
            write({"event": "tool", "data": {"name": call["name"], "args": call["args"]}})
        results: list[ToolMessage] = []
        if calls and deps.settings.tools.parallel_execution:
            results = await run(calls)  # ToolNode runs a message's calls concurrently
        else:
            for call in calls:
                results += await run([call])
        update = State(
            messages=[*results],
            tool_rounds=state.get("tool_rounds", 0) + 1,
            tools_used=[*state.get("tools_used", []), *(c["name"] for c in calls)],
        )
        for message in results:
            ok = message.status != "error"
            write({"event": "tool_result", "data": {"name": message.name, "ok": ok}})
            signal = message.artifact  # the tool's typed result, not its text read back
            if ok and message.name == "get_ml_signal" and isinstance(signal, dict):
                update["turn_signal"] = update["last_signal"] = signal
        return update

    return tools
