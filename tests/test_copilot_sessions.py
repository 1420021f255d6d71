"""Facade session views on real Redis: state, checkpoint history, one checkpoint, clear, delete, sessions."""

from __future__ import annotations

import pytest

from graph.copilot import NoPendingApproval
from graph.threads import InvalidId, thread_id
from tests.support.graph import SESSION, USER, CopilotFactory


def test_thread_id_validates_its_parts() -> None:
    assert thread_id("alice", "s-1") == "alice:s-1"
    for user, session in (("a:b", "s"), ("alice", ""), ("alice", "x" * 200)):
        with pytest.raises(InvalidId):
            thread_id(user, session)


async def test_history_checkpoint_clear_delete_and_sessions(make_copilot: CopilotFactory) -> None:
    async with make_copilot(["first answer", "second answer", "third answer"]) as copilot:
        assert await copilot.state(USER, SESSION) is None
        await copilot.chat(USER, SESSION, "hello")
        await copilot.chat(USER, SESSION, "again")
        await copilot.chat(USER, "other", "/help")
        assert await copilot.sessions(USER) == ["other", SESSION]
        assert await copilot.sessions("bob") == []
        await copilot.chat(USER, SESSION, "third")
        assert len(await copilot.history(USER, SESSION, limit=2)) == 2
        history = await copilot.history(USER, SESSION, limit=20)
        # Chat turns are checkpointed once, on exit (graph.checkpointer.DURABILITY_CHAT): one per turn.
        assert len(history) == 3 and history[0].step is not None and history[-1].step is not None
        assert history[0].step > history[-1].step  # newest first
        older = await copilot.checkpoint(USER, SESSION, history[-1].checkpoint_id)
        assert older is not None and len(older.messages) < len((await copilot.state(USER, SESSION)).messages)  # type: ignore[union-attr]
        assert await copilot.checkpoint(USER, SESSION, "no-such-checkpoint") is None
        # Another user cannot see this session.
        assert await copilot.state("bob", SESSION) is None
        assert await copilot.clear(USER, SESSION) is True
        cleared = await copilot.state(USER, SESSION)
        assert cleared is not None and cleared.messages == []
        with pytest.raises(NoPendingApproval):
            await copilot.decide(USER, SESSION, {"proposal_id": "x", "decision": "approve"})
        assert await copilot.delete(USER, SESSION) is True
        assert await copilot.state(USER, SESSION) is None
        assert await copilot.sessions(USER) == ["other"]
        assert await copilot.delete(USER, SESSION) is False
        assert await copilot.model_status() == "ok"


async def test_clear_drops_a_pending_proposal(make_copilot: CopilotFactory) -> None:
    async with make_copilot() as copilot:
        result = await copilot.chat(USER, SESSION, "/buy XAUUSD sl 5380 tp 5420")
        assert result.pending_approval is not None, result.response
        assert await copilot.clear(USER, SESSION)
        state = await copilot.state(USER, SESSION)
        assert state is not None and state.pending_approval is None
        with pytest.raises(NoPendingApproval):
            await copilot.decide(
                USER, SESSION, {"proposal_id": result.pending_approval["proposal_id"], "decision": "approve"}
            )


async def test_the_session_remembers_its_symbol(make_copilot: CopilotFactory) -> None:
    async with make_copilot() as copilot:
        assert (await copilot._context(USER, "sym", None)).session_symbol == "XAUUSD"  # the default
        assert (await copilot._context(USER, "sym", "eurusd")).session_symbol == "EURUSD"
        later = await copilot._context(USER, "sym", None)  # a later turn that names no symbol
        assert later.session_symbol == "EURUSD" and later.account_id == "paper-alice"
