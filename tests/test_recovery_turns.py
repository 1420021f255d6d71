"""A chat turn whose worker died (graph/recovery/): its note is left behind with the checkpoint it started
from, and the next access runs it again from there, or says it failed with its category."""

from __future__ import annotations

from typing import Any

import pytest

from graph.copilot import Copilot, RecoveryFailed
from graph.recovery.notes import OpenTurn, checkpoint_of
from graph.threads import thread_id
from tests.support.graph import SESSION, USER, CopilotFactory

TID = thread_id(USER, SESSION)


async def die_during(copilot: Copilot, message: str) -> None:
    """What a worker killed in a chat turn leaves: the turn's note, no checkpoint of the turn (it is
    checkpointed only at its end)."""
    snapshot = await copilot._snapshot(USER, SESSION)
    await copilot.notes.begin_turn(TID, OpenTurn(message, None, checkpoint_of(snapshot)))


async def test_the_next_message_answers_the_cut_turn_first(make_copilot: CopilotFactory) -> None:
    async with make_copilot(["first answer"]) as copilot:
        await copilot.chat(USER, SESSION, "hola")
        await die_during(copilot, "/help")
        assert await copilot.unfinished(USER, SESSION)
        answer = await copilot.chat(USER, SESSION, "/portfolio")
        assert "Your message “/help” was cut off when the server running it stopped" in answer.response
        assert "/signal SYMBOL" in answer.response and "Balance" in answer.response, answer.response
        state = await copilot.state(USER, SESSION)
        assert state is not None
        said = [(m["role"], m["content"]) for m in state.messages]
        asked, then = said.index(("user", "/help")), said.index(("user", "/portfolio"))
        answers = [text for role, text in said[asked:then] if role == "assistant"]
        assert asked < then and answers and answers[0].startswith("Comandos"), said
        assert not await copilot.unfinished(USER, SESSION)


async def test_a_turn_that_did_end_is_not_run_twice(make_copilot: CopilotFactory) -> None:
    """The note outlived its turn (the process died between the turn's checkpoint and removing it)."""
    async with make_copilot(["one", "two"]) as copilot:
        await copilot.chat(USER, SESSION, "hola")
        # The note of that turn, left behind: it names the checkpoint the turn started from, not the latest.
        await copilot.notes.begin_turn(TID, OpenTurn("hola", None, None))
        assert await copilot.recover(USER, SESSION) is None
        state = await copilot.state(USER, SESSION)
        assert state is not None and [m["content"] for m in state.messages if m["role"] == "user"] == ["hola"]
        assert await copilot.notes.open_turn(TID) is None


async def test_a_cut_turn_that_fails_again_is_marked_failed_and_the_trader_told(
    make_copilot: CopilotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_copilot(["ok"]) as copilot:
        await die_during(copilot, "/portfolio")
        real_run = copilot._run

        async def broken(*args: Any) -> Any:
            raise ConnectionError("broker away")

        monkeypatch.setattr(copilot, "_run", broken)
        with pytest.raises(RecoveryFailed):  # e.g. GET /api/sessions/{id}: the failure waits to be told
            await copilot.recover(USER, SESSION)
        turn = await copilot.notes.open_turn(TID)
        assert turn is not None and turn.failed == "ConnectionError"
        monkeypatch.setattr(copilot, "_run", real_run)
        told = await copilot.chat(USER, SESSION, "/help")
        assert "“/portfolio” was cut off" in told.response and "(ConnectionError)" in told.response
        assert "send it again" in told.response and "/signal SYMBOL" in told.response
        assert await copilot.notes.open_turn(TID) is None  # told once
