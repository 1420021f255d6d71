"""Recovery after a crash: what the facade notes around each run, so the next access can finish it.

- A decision run is checkpointed at every step (durability "sync"): a decision recorded without its end is
  resumed from its checkpoint (graph.results.interrupted).
- A chat turn is checkpointed once, at its end ("exit"): a turn whose worker died leaves no checkpoint. So
  the turn is noted (its message and the checkpoint it started from) before it runs, and the note is removed
  when it ends, however it ends. A note left on a thread still at that checkpoint is a turn whose worker
  died: it is run again from that checkpoint (what LangGraph would resume), or, when that fails too, marked
  failed with its category and the trader is told at the next message.
- A decision that has to wait behind a running turn (the approval endpoint queues it) is noted first, so the
  trader's click survives the process that queued it: the next access under the session's lease (a retry,
  another message, a read of the session, the start sweep) applies it once if its proposal still waits,
  and drops the note either way; the run that queued it removes its own note when it has run.
- Each proposal that stopped waiting (decided, re-quoted, replaced, expired) keeps the answer that ended
  it, so an approval sent again is answered with that outcome instead of "nothing is waiting".
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis
from langgraph.types import StateSnapshot

from graph.approval import Decision
from graph.schemas import ChatResult
from tools.keys import SessionKeys

MAX_FATES = 20  # the newest proposals of a thread whose end is remembered
TURN_TTL_SECONDS = 86_400  # a note outlives any lease; with `redis.ttl` 0 it still goes away in a day
ALREADY = "(Already decided: proposal {short} ended as below; nothing was done again.)"
APPLIED = "(Applied your {decision} of proposal {short}: it was queued when the server running it stopped.)"
# Delete a queued decision only if it is still the one this caller wrote (a later click may replace it).
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class OpenTurn:
    """A chat turn that started and has not ended: its message, and the checkpoint it started from."""

    message: str
    symbol: str | None
    base: str | None
    failed: str | None = None  # the category, once running it again failed too
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # kept when it runs again


@dataclass(frozen=True)
class QueuedDecision:
    """A decision noted before it waited for the session's lease; `raw` is the note as stored."""

    decision: Decision
    raw: str


def checkpoint_of(snapshot: StateSnapshot) -> str | None:
    return snapshot.config.get("configurable", {}).get("checkpoint_id") if snapshot.config else None


def failure_category(exc: BaseException) -> str:
    """A model failure's category (graph.model.errors), else the exception's kind."""
    category = getattr(exc, "category", None)
    return str(getattr(category, "value", category) or type(exc).__name__)


def turn_failed_text(turn: OpenTurn) -> str:
    return (
        f"Your message “{turn.message[:80]}” was cut off when the server running it stopped, and it could "
        f"not be answered afterwards either ({turn.failed}). Nothing more was done for it: send it again."
    )


def replayed(result: ChatResult, proposal_id: str) -> ChatResult:
    """The stored answer that ended a proposal, shown again for a repeated decision."""
    note = ALREADY.format(short=proposal_id[:8] or "(the last one)")
    return result.model_copy(update={"response": f"{note}\n{result.response}", "replayed": True})


class RunNotes:
    """The notes of each thread in Redis, under the session's hash tag (tools/keys.py: one slot, so
    `forget` is one DEL on a cluster too): `turn` (a chat turn in flight), `queued` (a decision waiting for
    the session) and `fates` (the newest proposals' ends, newest first)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds if ttl_seconds > 0 else TURN_TTL_SECONDS

    def _turn(self, thread: str) -> str:
        return SessionKeys(self.prefix, thread).turn

    def _fates(self, thread: str) -> str:
        return SessionKeys(self.prefix, thread).fates

    def _queued(self, thread: str) -> str:
        return SessionKeys(self.prefix, thread).queued

    async def queue_decision(self, thread: str, decision: Decision) -> QueuedDecision:
        """Note a decision before it waits for the session (the newest click replaces an older one)."""
        raw = json.dumps({"id": uuid.uuid4().hex, "decision": decision})
        await self.redis.set(self._queued(thread), raw, ex=self.ttl)
        return QueuedDecision(decision, raw)

    async def queued_decision(self, thread: str) -> QueuedDecision | None:
        raw = await self.redis.get(self._queued(thread))
        return QueuedDecision(json.loads(raw)["decision"], str(raw)) if raw else None

    async def drop_decision(self, thread: str, queued: QueuedDecision) -> None:
        """Remove the note if it is still this one."""
        await self.redis.eval(_DROP, 1, self._queued(thread), queued.raw)

    async def begin_turn(self, thread: str, turn: OpenTurn) -> None:
        await self.redis.set(self._turn(thread), json.dumps(asdict(turn)), ex=self.ttl)

    async def end_turn(self, thread: str) -> None:
        await self.redis.delete(self._turn(thread))

    async def open_turn(self, thread: str) -> OpenTurn | None:
        raw = await self.redis.get(self._turn(thread))
        return OpenTurn(**json.loads(raw)) if raw else None

    async def record(self, thread: str, proposal_id: str, result: ChatResult) -> None:
        entry = json.dumps({"proposal_id": proposal_id, "result": result.model_dump(mode="json")})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self._fates(thread), entry)
            pipe.ltrim(self._fates(thread), 0, MAX_FATES - 1)
            pipe.expire(self._fates(thread), self.ttl)
            await pipe.execute()

    async def fate(self, thread: str, proposal_id: str) -> ChatResult | None:
        """How the proposal (its id, or 8+ of its first characters; "" = the newest) ended, if it did."""
        for raw in await self.redis.lrange(self._fates(thread), 0, -1):
            entry = json.loads(raw)
            if str(entry["proposal_id"]).startswith(proposal_id.lower()):
                return replayed(ChatResult.model_validate(entry["result"]), str(entry["proposal_id"]))
        return None

    async def record_ends(self, thread: str, waiting: str | None, result: ChatResult) -> None:
        """After a run: the proposal that waited before it (or that it decided) and no longer waits ended."""
        if waiting is None:
            return
        still = result.pending_approval
        if still is None or still["proposal_id"] != waiting:
            await self.record(thread, waiting, result)

    async def forget(self, thread: str) -> None:
        await self.redis.delete(self._turn(thread), self._fates(thread), self._queued(thread))
