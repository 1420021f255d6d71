"""Fail closed: a run that lost its runtime context (who, which account) stops with a clear error at the first
node or tool that needs it; it never falls back to the shared default account and never reaches the broker."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from config import Settings
from graph.audit import AuditTrail
from graph.builder import build_graph
from graph.deps import Deps
from graph.model.fake import ScriptedChatModel
from graph.nodes.ask_again import make_ask_again
from graph.nodes.execute import make_execute
from graph.nodes.human_approval import make_human_approval
from graph.nodes.load_context import make_load_context
from graph.nodes.risk_gate import make_risk_gate
from graph.nodes.tools import tool_runner
from graph.state import State
from tests.support.graph import WallClock, buy_levels, positions
from tools.context import Context, MissingContext
from tools.services import Services
from tools.trading_tools import make_tools

ACCOUNT = "acct-fail-closed"
CONTEXT = Context(user_id="alice", account_id=ACCOUNT)


async def paused_on_a_buy(services: Services, settings: Settings, wall: WallClock) -> tuple[Any, Any, dict]:
    """A thread paused on the approval of a /buy (run with its context), its graph and its config."""
    graph = build_graph(services, settings, ScriptedChatModel(replies=["ok"]), wall).compile(
        checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": "fail-closed"}}
    levels = await buy_levels(services)
    buy = f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
    await graph.ainvoke({"messages": [HumanMessage(buy)]}, config, context=CONTEXT)
    state = await graph.aget_state(config)
    assert state.values["proposal"] is not None and state.interrupts, state.values.get("messages")
    return graph, config, state.values


async def no_orders(services: Services) -> None:
    assert await positions(services, ACCOUNT) == [] and await positions(services, "paper") == []


async def test_an_approval_resumed_without_context_stops_and_trades_nothing(
    services: Services, settings: Settings, wall: WallClock
) -> None:
    graph, config, values = await paused_on_a_buy(services, settings, wall)
    approve = {"proposal_id": values["proposal"]["proposal_id"], "decision": "approve"}
    with pytest.raises(MissingContext, match="no runtime context"):
        await graph.ainvoke(Command(resume=approve), config)  # no context=
    await no_orders(services)
    # The proposal still waits: resumed with its context, the same approval trades once.
    assert (await graph.aget_state(config)).interrupts
    await graph.ainvoke(Command(resume=approve), config, context=CONTEXT)
    assert len(await positions(services, ACCOUNT)) == 1 and await positions(services, "paper") == []


async def test_a_turn_without_context_stops_at_its_first_node(
    services: Services, settings: Settings, wall: WallClock
) -> None:
    graph = build_graph(services, settings, ScriptedChatModel(replies=["ok"]), wall).compile()
    levels = await buy_levels(services)
    buy = f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
    with pytest.raises(MissingContext):
        await graph.ainvoke({"messages": [HumanMessage(buy)]})
    await no_orders(services)


async def test_every_node_that_acts_for_an_account_refuses_a_missing_context(
    services: Services, settings: Settings, wall: WallClock
) -> None:
    _, _, values = await paused_on_a_buy(services, settings, wall)
    deps = Deps(services, settings, ScriptedChatModel(replies=["ok"]), AuditTrail(services.redis, "x:"), wall)
    approved = State(
        **{**values, "decision": {"proposal_id": values["proposal"]["proposal_id"], "decision": "approve"}}
    )
    gated = State(messages=values["messages"], pending_call=values["pending_call"])
    nodes = [
        (make_execute(deps), approved),
        (make_human_approval(deps), State(**values)),
        (make_risk_gate(deps), gated),
        (make_load_context(deps), State(**values)),
        (
            make_ask_again(deps),
            State(
                **{**values, "proposal": {**values["proposal"], "expires_at": "2000-01-01T00:00:00+00:00"}}
            ),
        ),
    ]
    for node, state in nodes:
        with pytest.raises(MissingContext):
            await node(state, Runtime(context=None))
    await no_orders(services)


async def test_a_tool_run_without_context_answers_an_error_and_reads_no_account(services: Services) -> None:
    graph = StateGraph(MessagesState, context_schema=Context)
    graph.add_node("tools", tool_runner(make_tools(services)))
    graph.add_edge(START, "tools")
    call = AIMessage(content="", tool_calls=[{"name": "get_portfolio", "args": {}, "id": "c1"}])
    state = await graph.compile().ainvoke({"messages": [call]})
    result = state["messages"][-1]
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "no runtime context" in str(result.content) and "balance" not in str(result.content)
