"""The approval interrupt in LangGraph's human-in-the-loop shape: what Studio and the inboxes use."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Command

from graph.copilot import Copilot
from tests.support.graph import SESSION, USER, CopilotFactory, audit_of, buy_levels, positions
from tools.services import Services


async def propose(copilot: Copilot, services: Services) -> dict[str, Any]:
    levels = await buy_levels(services)
    result = await copilot.chat(
        USER, SESSION, f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
    )
    assert result.pending_approval is not None, result.response
    return result.pending_approval


async def interrupt_value(copilot: Copilot) -> Any:
    snapshot = await copilot.graph.aget_state(copilot._config(USER, SESSION))
    assert len(snapshot.interrupts) == 1
    return snapshot.interrupts[0].value


async def resume(copilot: Copilot, value: Any) -> str:
    """Resume as Studio does: the raw value, no facade checks in between; the session's answer."""
    config = copilot._config(USER, SESSION)
    context = await copilot._context(USER, SESSION, None)
    await copilot.graph.ainvoke(Command(resume=value), config, context=context)
    state = await copilot.state(USER, SESSION)
    assert state is not None
    return str(state.messages[-1]["content"]) if state.messages else ""


async def test_the_interrupt_is_a_human_interrupt_carrying_the_proposal(
    make_copilot: CopilotFactory, services: Services
) -> None:
    async with make_copilot() as copilot:
        proposal = await propose(copilot, services)
        value = await interrupt_value(copilot)
    assert value["action_request"]["action"] == "execute_trade"
    args = value["action_request"]["args"]
    assert args["proposal_id"] == proposal["proposal_id"] and args["size_lots"] == 0.2
    assert {k: args[k] for k in ("symbol", "side", "stop_loss", "take_profit")} == {
        k: proposal[k] for k in ("symbol", "side", "stop_loss", "take_profit")
    }
    assert all(not isinstance(v, dict | list) for v in args.values())  # editable as a flat form
    assert value["config"] == {
        "allow_ignore": True,
        "allow_respond": True,
        "allow_edit": True,
        "allow_accept": True,
    }
    assert "BUY 0.2 lots XAUUSD" in value["description"] and "Accept approves" in value["description"]
    assert value["type"] == "approval_required" and value["proposal"] == proposal


@pytest.mark.parametrize("wrap", [False, True], ids=["single", "list"])
async def test_accept_places_one_order(make_copilot: CopilotFactory, services: Services, wrap: bool) -> None:
    async with make_copilot() as copilot:
        await propose(copilot, services)
        answer = {"type": "accept", "args": None}
        last = await resume(copilot, [answer] if wrap else answer)
        assert "EXECUTED" in last
    assert [p.size for p in await positions(services)] == [0.2]


async def test_edit_is_gated_again_then_accepted(make_copilot: CopilotFactory, services: Services) -> None:
    async with make_copilot() as copilot:
        first = await propose(copilot, services)
        shown = (await interrupt_value(copilot))["action_request"]
        # Generic forms send every argument back, numbers often as text.
        edited = {**shown["args"], "size_lots": "0.1"}
        await resume(copilot, {"type": "edit", "args": {"action": shown["action"], "args": edited}})
        second = (await copilot.state(USER, SESSION)).pending_approval  # type: ignore[union-attr]
        assert second is not None and second["proposal_id"] != first["proposal_id"]
        assert second["size_lots"] == 0.1 and second["risk_usd"] == 50.0
        assert "EXECUTED" in await resume(copilot, {"type": "accept", "args": None})
    assert [p.size for p in await positions(services)] == [0.1]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"type": "response", "args": "wait for the London open"}, "wait for the London open"),
        ({"type": "ignore", "args": None}, "ignored in the inbox"),
    ],
)
async def test_respond_and_ignore_reject(
    make_copilot: CopilotFactory, services: Services, answer: dict[str, Any], reason: str
) -> None:
    async with make_copilot() as copilot:
        await propose(copilot, services)
        await resume(copilot, answer)
        state = await copilot.state(USER, SESSION)
        assert state is not None and state.pending_approval is None
        assert any(f"REJECTED by the trader ({reason})" in str(m["content"]) for m in state.messages)
    assert await positions(services) == []


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        ("approve", "was not understood"),
        ({"type": "maybe"}, "unknown response type 'maybe'"),
        ({"type": "response", "args": ""}, "a response needs the trader's text"),
        (
            {"type": "edit", "args": {"action": "execute_trade", "args": {"symbol": "EURUSD"}}},
            "symbol cannot",
        ),
        ({"type": "edit", "args": {"action": "execute_trade", "args": {"size": 1}}}, "unknown edit 'size'"),
        ({"type": "edit", "args": {"action": "execute_trade", "args": {"size_lots": -1}}}, "positive number"),
        ({"type": "edit", "args": {"action": "execute_trade", "args": {}}}, "an edit must change some"),
        ([{"type": "accept"}, {"type": "accept"}], "was not understood"),
    ],
)
async def test_anything_else_asks_again_and_never_cancels(
    make_copilot: CopilotFactory, services: Services, answer: Any, fragment: str
) -> None:
    async with make_copilot() as copilot:
        proposal = await propose(copilot, services)
        await resume(copilot, answer)
        again = await interrupt_value(copilot)
        assert again["proposal"]["proposal_id"] == proposal["proposal_id"]
        assert fragment in again["proposal"]["notice"] and fragment in again["description"]
        await resume(copilot, "still not an answer")  # asks again, and again
        assert "EXECUTED" in await resume(copilot, {"type": "accept", "args": None})
    assert len(await positions(services)) == 1
    decisions = [e["data"]["decision"] for e in await audit_of(services).entries() if e["kind"] == "decision"]
    assert decisions == ["invalid", "invalid", "approve"]


async def test_the_project_decision_still_resumes(make_copilot: CopilotFactory, services: Services) -> None:
    async with make_copilot() as copilot:
        proposal = await propose(copilot, services)
        answer = {"proposal_id": proposal["proposal_id"], "decision": "edit", "edits": {"take_profit": 1.0}}
        await resume(copilot, answer)  # a BUY's TP below the entry: the gate blocks the edited trade
        state = await copilot.state(USER, SESSION)
        assert state is not None and state.pending_approval is None
        assert any("BLOCKED" in str(m["content"]) for m in state.messages)
    assert await positions(services) == []


async def test_a_huge_integer_in_a_standard_edit_answer_is_refused_before_the_checkpoint() -> None:
    """Any resume shape passes the facade's range check: a 2**64 inside a human-in-the-loop `edit` answer
    would make the checkpoint writer raise; it is refused with the proposal kept."""
    from graph.approval_reply import BadDecision, check_resume

    answer = [{"type": "edit", "args": {"action": "execute_trade", "args": {"size_lots": 2**64}}}]
    with pytest.raises(BadDecision, match="out of range"):
        check_resume(answer)
    check_resume([{"type": "edit", "args": {"action": "execute_trade", "args": {"size_lots": 0.05}}}])
