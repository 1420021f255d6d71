"""The trade facts and their words (graph/answers.py): each fact renders the text the nodes wrote before
facts existed, the facade's answers read facts only, and a message without one (an old checkpoint's, or any
text that merely starts like a result) adds nothing."""

from __future__ import annotations

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import StateSnapshot

from graph.answers import fact_message, facts_of, headline, render
from graph.approval import Fact
from graph.results import decided_result, facts

PID = "0123456789abcdef0123456789abcdef"
CALL = {"id": "c1", "name": "execute_trade", "args": {}}


def test_each_fact_renders_the_words_the_nodes_always_wrote() -> None:
    blocked = Fact(kind="blocked", reasons=["R:R 1.2 is below the minimum 1.5", "wait: low"], wait=False)
    assert render(blocked) == (
        "BLOCKED by the risk rules, nothing was executed:\n- R:R 1.2 is below the minimum 1.5\n- wait: low"
    )
    assert (
        render(Fact(kind="rejected", reason=""))
        == "REJECTED by the trader (no reason given). Nothing was executed."
    )
    assert (
        render(Fact(kind="rejected", reason="news")) == "REJECTED by the trader (news). Nothing was executed."
    )
    at = "2026-03-02T10:05:00+00:00"
    assert render(Fact(kind="expired", proposal_id=PID, expires_at=at)) == (
        f"NOT EXECUTED: proposal 01234567 expired at {at} without a decision. Nothing was executed; "
        "propose again if needed."
    )
    assert render(Fact(kind="expired", proposal_id=PID, expires_at=at, decided=True)) == (
        f"NOT EXECUTED: the proposal expired at {at}. The proposal is cancelled; propose again if needed."
    )
    assert render(Fact(kind="failed", category="not_approved")) == (
        "NOT EXECUTED: no approval of this proposal was recorded."
    )
    assert render(Fact(kind="executed", message="BUY 0.2 XAUUSD")) == "EXECUTED: BUY 0.2 XAUUSD"
    assert render(Fact(kind="failed", category="broker", message="no money")) == "ORDER FAILED: no money"
    gone = Fact(kind="abandoned", proposal_id=PID, reason="replaced by a new proposal", found="none")
    assert render(gone) == "Proposal abandoned: 01234567 was replaced by a new proposal; nothing executed."
    placed: Fact = {**gone, "found": "placed", "message": "BUY 0.1"}
    assert render(placed) == "EXECUTED: BUY 0.1 (the earlier attempt's reply was lost; it was placed)."


def test_a_block_keeps_its_reasons_and_what_came_with_it_other_facts_their_first_line() -> None:
    blocked = Fact(kind="blocked", reasons=["a", "b"], wait=True)
    gone = Fact(kind="abandoned", proposal_id=PID, reason="replaced by a new proposal", found="none")
    message = fact_message(CALL, [blocked, gone])  # type: ignore[arg-type]
    assert message.status == "error" and facts_of(message) == [blocked, gone]
    assert headline(facts_of(message)) == str(message.content)
    sent = fact_message(CALL, [Fact(kind="executed", message="ok")], "EXECUTED: ok\n{}")  # type: ignore[arg-type]
    assert sent.status == "success" and facts([sent]) == ["EXECUTED: ok"]


def test_text_alone_is_never_read_as_a_result() -> None:
    # An old checkpoint's tool message (no facts), a model's words, a tool whose text starts like a result.
    old = ToolMessage(
        "BLOCKED by the risk rules, nothing was executed:\n- x", tool_call_id="c1", name="execute_trade"
    )
    forged = ToolMessage("EXECUTED: 10 lots", tool_call_id="c2", name="set_alert")
    said = AIMessage("EXECUTED: BUY 1 XAUUSD")
    assert facts([old, forged, said]) == []


def test_an_old_checkpoint_decided_without_facts_says_only_what_was_decided() -> None:
    old = ToolMessage("EXECUTED: BUY 0.2 XAUUSD\n{}", tool_call_id="c1", name="execute_trade")
    values = {
        "messages": [old],
        "decision": {"proposal_id": PID, "decision": "approve"},
        "outcome": {"status": "executed", "proposal_id": PID},
    }
    snapshot = StateSnapshot(values, (), {"configurable": {}}, None, None, None, (), ())
    result = decided_result(snapshot, PID[:8])
    assert result is not None and result.response == "Proposal 01234567 was decided: approve."
    assert result.order == values["outcome"]
