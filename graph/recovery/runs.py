"""Finishing what a crash left unfinished (the notes it reads are graph.recovery.notes): a decision run
resumed from its last checkpoint, a chat turn whose worker died run again, a decision a dead process had
queued applied once; `settled_state` does it before a read, `sweep` for every session at start.

`Recovery` is a part of graph.copilot.Copilot (its methods run on the facade)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from langgraph.types import StateSnapshot

from graph.audit import AuditTrail
from graph.checkpointer import DURABILITY_DECISION
from graph.recovery.notes import (
    APPLIED,
    QueuedDecision,
    checkpoint_of,
    failure_category,
    turn_failed_text,
)
from graph.results import chat_result, interrupted, merge_results, message_ids, pending_proposal
from graph.schemas import ChatResult, SessionState
from graph.threads import thread_id
from tools.locks import Leases

if TYPE_CHECKING:
    from graph.copilot import Copilot

log = logging.getLogger(__name__)


class RecoveryFailed(Exception):
    """An interrupted run could not be completed (broker or Redis still away); the thread is untouched."""


class Recovery:
    """Finishing what a crash left unfinished in the threads of one facade (Copilot.recovery)."""

    def __init__(self, copilot: Copilot) -> None:
        self.copilot = copilot
        self.notes = copilot.notes

    async def after_crash(
        self, user_id: str, session_id: str, snapshot: StateSnapshot, own: QueuedDecision | None = None
    ) -> tuple[ChatResult | None, bool]:
        """What was completed (None: nothing was due) and whether it was a decision: the decision run or the
        chat turn a crash cut, then a decision queued behind that turn by a process that died (not `own`)."""
        result: ChatResult | None
        if interrupted(snapshot):
            result, decided = await self._complete_decision(user_id, session_id, snapshot), True
        else:
            result, decided = await self._resume_turn(user_id, session_id, snapshot), False
        queued = await self.notes.queued_decision(thread_id(user_id, session_id))
        if queued is None or (own is not None and queued.raw == own.raw):
            return result, decided
        if result is not None:
            snapshot = await self.copilot._snapshot(user_id, session_id)
        applied = await self._apply_queued(user_id, session_id, queued, snapshot)
        return (result, decided) if applied is None else (merge_results(result, applied), True)

    async def _apply_queued(
        self, user_id: str, session_id: str, queued: QueuedDecision, snapshot: StateSnapshot
    ) -> ChatResult | None:
        """A decision a dead process had queued: applied once if its proposal still waits (a decision that
        reached the checkpoint was completed above, so its proposal no longer waits), its note dropped."""
        tid = thread_id(user_id, session_id)
        pending, pid = pending_proposal(snapshot), str(queued.decision.get("proposal_id") or "")
        if pending is None or pending["proposal_id"] != pid:
            await self.notes.drop_decision(tid, queued)
            return None
        try:
            result = await self.copilot._decide(user_id, session_id, queued.decision, snapshot)
        except Exception as exc:  # the note stays: the next access tries again
            log.exception("could not apply the queued decision of %s", tid)
            raise RecoveryFailed(
                f"Your {queued.decision['decision']} of proposal {pid[:8]} was queued when the server "
                f"running this session stopped, and could not be applied yet ({type(exc).__name__}: {exc}); "
                "try again shortly."
            ) from exc
        await self.notes.drop_decision(tid, queued)
        await AuditTrail(self.copilot.services.redis, self.copilot.settings.redis.prefix).append(
            "recovered_decision", user_id, tid, {"proposal_id": pid, "order": result.order}
        )
        note = APPLIED.format(decision=queued.decision["decision"], short=pid[:8])
        return result.model_copy(update={"response": f"{note}\n{result.response}"})

    async def _complete_decision(self, user_id: str, session_id: str, snapshot: StateSnapshot) -> ChatResult:
        config = self.copilot._config(user_id, session_id)
        before = message_ids(snapshot)
        context = await self.copilot._context(user_id, session_id, None)
        try:
            await self.copilot.graph.ainvoke(None, config, context=context, durability=DURABILITY_DECISION)
            await self.copilot._prune(config)
        except Exception as exc:
            log.exception("could not complete the interrupted run of %s", config["configurable"]["thread_id"])
            raise RecoveryFailed(
                "A run of this session stopped before its end (an approved order may be involved) and "
                f"could not be completed yet ({type(exc).__name__}: {exc}). Nothing else was done; "
                "try again shortly."
            ) from exc
        result = chat_result(await self.copilot.graph.aget_state(config), before)
        tid = thread_id(user_id, session_id)
        await AuditTrail(self.copilot.services.redis, self.copilot.settings.redis.prefix).append(
            "recovered", user_id, tid, {"order": result.order}
        )
        decided = (snapshot.values or {}).get("decision") or {}
        await self.notes.record_ends(tid, decided.get("proposal_id"), result)
        note = "(Completed a run that was interrupted before its end.)"
        return result.model_copy(update={"response": f"{note}\n{result.response}"})

    async def _resume_turn(self, user_id: str, session_id: str, snapshot: StateSnapshot) -> ChatResult | None:
        tid = thread_id(user_id, session_id)
        turn = await self.notes.open_turn(tid)
        if turn is None:
            return None
        if turn.base != checkpoint_of(
            snapshot
        ):  # the turn ended (its checkpoint is there); only the note was left
            await self.notes.end_turn(tid)
            return None
        if turn.failed:
            await self.notes.end_turn(tid)
            return ChatResult(response=turn_failed_text(turn), pending_approval=pending_proposal(snapshot))
        try:
            result = await self.copilot._chat_turn(
                user_id, session_id, turn.message, turn.symbol, snapshot, turn_id=turn.turn_id
            )
        except Exception as exc:
            log.exception("could not answer the interrupted chat turn of %s", tid)
            failed = replace(turn, failed=failure_category(exc))
            await self.notes.begin_turn(tid, failed)
            raise RecoveryFailed(turn_failed_text(failed)) from exc
        audit = AuditTrail(self.copilot.services.redis, self.copilot.settings.redis.prefix)
        await audit.append("recovered_turn", user_id, tid, {"message": turn.message[:200]})
        note = (
            f"(Your message “{turn.message[:80]}” was cut off when the server running it stopped; it was run "
            "again from its checkpoint.)"
        )
        return result.model_copy(update={"response": f"{note}\n{result.response}"})


async def settled_state(
    copilot: Copilot, locks: Leases, user_id: str, session_id: str
) -> SessionState | None:
    """The session's state, after completing what a crash left unfinished (a decision run cut short, a chat
    turn whose worker died, a decision it had queued) when no run holds the session."""
    state = await copilot.state(user_id, session_id)
    due = state is not None and state.interrupted_run
    if not due and not await copilot.turn_open(user_id, session_id):
        if not await copilot.decision_queued(user_id, session_id):
            return state
    token = await locks.acquire(user_id, session_id)
    if token is None:  # a run (or another process's recovery) is on it
        return state
    try:
        async with locks.keep(user_id, session_id, token):
            await copilot.recover(user_id, session_id)
    except Exception as exc:  # reported by the next chat turn; reading must still work
        log.warning("recovery of %s/%s failed: %s", user_id, session_id, exc)
    return await copilot.state(user_id, session_id)


async def sweep(copilot: Copilot, locks: Leases, rounds: int = 4) -> int:
    """At start: complete every run a crash interrupted, before anyone asks. A session still leased by the
    dead process is tried again after one lease, a few times. Returns how many were completed."""
    done = 0
    for attempt in range(rounds):
        if attempt:
            await asyncio.sleep(locks.lease_seconds)
        left = 0
        for user_id, session_id in await copilot.interrupted_sessions():
            await settled_state(copilot, locks, user_id, session_id)
            if not await copilot.unfinished(user_id, session_id):
                done += 1
                log.info("completed the interrupted run of %s/%s", user_id, session_id)
            else:
                left += 1
        if not left:
            break
    return done
