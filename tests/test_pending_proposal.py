"""A pending proposal waits through read-only commands and questions; only a decision, a new proposal, its
expiry or clearing the session ends it (graph/pending.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from graph.copilot import Copilot
from tests.support.graph import SESSION, USER, CopilotFactory, WallClock, audit_of, buy_levels, positions
from tools.services import Services


async def propose(copilot: Copilot, services: Services, stop_usd: float = 5.0) -> dict:
    levels = await buy_levels(services, stop_usd=stop_usd)
    result = await copilot.chat(
        USER, SESSION, f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
    )
    assert result.pending_approval is not None, result.response
    return dict(result.pending_approval)


async def test_a_pending_card_survives_portfolio_signal_and_a_question_then_executes_once(
    make_copilot: CopilotFactory, services: Services
) -> None:
    async with make_copilot(["The signal is long; your proposal still waits."]) as copilot:
        proposal = await propose(copilot, services)
        for message in ("/portfolio", "/signal XAUUSD 15m", "¿Qué opinas de la propuesta?"):
            answer = await copilot.chat(USER, SESSION, message)
            waiting = answer.pending_approval
            assert waiting is not None and waiting["proposal_id"] == proposal["proposal_id"], answer.response
            assert "Still waiting for your decision" in answer.response, answer.response
            state = await copilot.state(USER, SESSION)
            assert state is not None and state.pending_approval is not None
        assert await positions(services) == []
        done = await copilot.chat(USER, SESSION, "/approve")
        assert done.response.startswith("EXECUTED") and done.pending_approval is None, done.response
    assert len(await positions(services)) == 1
    kinds = [e["kind"] for e in await audit_of(services).entries()]
    assert "abandoned" not in kinds and kinds.count("execution") == 1


async def test_a_new_proposal_replaces_the_pending_one(
    make_copilot: CopilotFactory, services: Services
) -> None:
    async with make_copilot() as copilot:
        first = await propose(copilot, services)
        await copilot.chat(USER, SESSION, "/portfolio")
        second = await propose(copilot, services, stop_usd=6.0)
        assert second["proposal_id"] != first["proposal_id"]
        assert f"Proposal abandoned: {first['proposal_id'][:8]} was replaced by a new proposal" in str(
            second["notice"]
        )
        done = await copilot.chat(USER, SESSION, "/approve")
        assert done.order is not None and done.order["proposal_id"] == second["proposal_id"]
    abandoned = [
        e["data"]["proposal_id"] for e in await audit_of(services).entries() if e["kind"] == "abandoned"
    ]
    assert abandoned == [first["proposal_id"]] and len(await positions(services)) == 1


async def test_a_pending_proposal_expires_at_the_next_message(
    make_copilot: CopilotFactory, services: Services, wall: WallClock
) -> None:
    async with make_copilot() as copilot:
        proposal = await propose(copilot, services)
        wall.value = datetime.fromisoformat(proposal["expires_at"]) + timedelta(seconds=1)
        answer = await copilot.chat(USER, SESSION, "/portfolio")
        assert answer.pending_approval is None and "expired" in answer.response, answer.response
        state = await copilot.state(USER, SESSION)
        assert state is not None and state.pending_approval is None
    assert await positions(services) == []
