"""An approval edit changes the trade (the pending call's TradeIdea), never the call's arguments: the gate
prices the edited trade, and the call stays as the model (or the slash command) made it. A call edited by
the code before this (its arguments rewritten, no trade) is still gated from its arguments."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from config import Settings
from graph.builder import build_graph
from graph.model.fake import ScriptedChatModel
from tests.support.graph import WallClock, buy_levels
from tools.context import Context
from tools.services import Services

CONTEXT = Context(user_id="alice", account_id="acct-edit-trade")


async def paused(
    services: Services, settings: Settings, wall: WallClock, thread: str
) -> tuple[Any, Any, dict]:
    graph = build_graph(services, settings, ScriptedChatModel(replies=["ok"]), wall).compile(
        checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": thread}}
    levels = await buy_levels(services)
    buy = f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
    await graph.ainvoke({"messages": [HumanMessage(buy)]}, config, context=CONTEXT)
    values = (await graph.aget_state(config)).values
    assert values["proposal"]["size_lots"] == 0.2, values["messages"][-1]
    return graph, config, values


async def test_an_edit_is_applied_to_the_trade_not_to_the_call(
    services: Services, settings: Settings, wall: WallClock
) -> None:
    graph, config, first = await paused(services, settings, wall, "edit-trade")
    called = dict(first["pending_call"]["args"])
    assert "size" not in called  # sized from the risk %: the slash command gave no lots
    edit = {"proposal_id": first["proposal"]["proposal_id"], "decision": "edit", "edits": {"size_lots": 0.1}}
    await graph.ainvoke(Command(resume=edit), config, context=CONTEXT)
    second = (await graph.aget_state(config)).values
    assert (
        second["proposal"]["size_lots"] == 0.1
        and second["proposal"]["proposal_id"] != first["proposal"]["proposal_id"]
    )
    call = second["pending_call"]
    assert call["args"] == called and call["trade"]["size_lots"] == 0.1 and call["trade"]["side"] == "BUY"
    # A second edit starts from the edited trade: the size stays, the stop moves.
    stop = round(first["proposal"]["stop_loss"] + 1.0, 2)
    again = {
        "proposal_id": second["proposal"]["proposal_id"],
        "decision": "edit",
        "edits": {"stop_loss": stop},
    }
    await graph.ainvoke(Command(resume=again), config, context=CONTEXT)
    third = (await graph.aget_state(config)).values
    assert (third["proposal"]["size_lots"], third["proposal"]["stop_loss"]) == (0.1, stop)
    assert third["pending_call"]["args"] == called


async def test_an_old_checkpoints_edited_arguments_are_still_gated(
    services: Services, settings: Settings, wall: WallClock
) -> None:
    graph, config, first = await paused(services, settings, wall, "edit-old")
    # As the earlier code left an edit: the size written into the call's arguments, no trade.
    call = {**first["pending_call"], "args": {**first["pending_call"]["args"], "size": 0.1}}
    pid = first["proposal"]["proposal_id"]
    decision = {"proposal_id": pid, "decision": "edit", "edits": {"size_lots": 0.1}, "reason": ""}
    update = {"pending_call": call, "proposal": None, "decision": decision}
    await graph.aupdate_state(config, update, as_node="human_approval")
    await graph.ainvoke(None, config, context=CONTEXT)
    values = (await graph.aget_state(config)).values
    assert values["proposal"]["size_lots"] == 0.1 and "trade" not in values["pending_call"]
