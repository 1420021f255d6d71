"""The graph facade: all the server, the CLI and notebooks need (chat, decide, sessions); one per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot, StreamMode

from config import Settings
from graph.approval import Decision, Proposal
from graph.approval_reply import BadDecision, check_resume
from graph.builder import build_graph
from graph.checkpointer import DURABILITY_CHAT, DURABILITY_DECISION, open_checkpointer, prune_thread
from graph.deps import wall_clock
from graph.recovery.notes import (
    OpenTurn,
    QueuedDecision,
    RunNotes,
    checkpoint_of,
    replayed,
)
from graph.recovery.runs import Recovery, RecoveryFailed
from graph.results import (
    RunEnd,
    chat_result,
    decided_result,
    merge_results,
    message_ids,
    pending_proposal,
)
from graph.schemas import ChatResult
from graph.sessions import SessionViews
from graph.slash import (
    DecisionCommand,
    DecisionRefused,
    PrefsCommand,
    SlashCommand,
    command_state,
    parse_slash,
    typed_decision,
)
from graph.streaming import Event, to_events
from graph.threads import account_for, thread_id
from tools.context import DEFAULT_SYMBOL, Context
from tools.preferences import BadPreference, PreferenceStore, preferences_text
from tools.redis_clients import async_client
from tools.schemas import JsonObject
from tools.services import Services, build_services

log = logging.getLogger(__name__)


class NoPendingApproval(Exception):
    """A decision arrived but the session is not waiting for one (HTTP 409)."""


def require_pending(snapshot: StateSnapshot) -> tuple[set[str], Proposal]:
    """The thread's message ids (what a run's result needs) and the pending proposal; raises when none."""
    pending = pending_proposal(snapshot)
    if pending is None:
        raise NoPendingApproval("nothing in this session is waiting for an approval decision")
    return message_ids(snapshot), pending


@dataclass(frozen=True)
class Turn:
    """A message about to run: the thread as read, a run completed first, the message as a decision."""

    snapshot: StateSnapshot
    recovered: ChatResult | None
    decided: bool  # what was completed first was a decision run (a decision typed now no longer applies)
    decision: Decision | None
    command: SlashCommand | None = None  # the message parsed (None: plain chat), once for the whole turn


def turn_input(message: str, turn: Turn | None) -> JsonObject:
    """A chat turn's graph input: the message, and how _begin parsed it (the reason node reads that instead
    of parsing again; a re-run of a noted turn has none and is parsed there)."""
    if turn is None:
        return {"messages": [HumanMessage(message)]}
    return {"messages": [HumanMessage(message)], "command": command_state(message.strip(), turn.command)}


class Copilot(SessionViews):
    """Everything the server, the CLI and notebooks need; one instance per process."""

    def __init__(
        self,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        services: Services,
        settings: Settings,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        chat_model: BaseChatModel | None = None,
    ) -> None:
        self.graph = graph
        self.services = services
        self.settings = settings
        saver = checkpointer or graph.checkpointer
        self.checkpointer = saver if isinstance(saver, BaseCheckpointSaver) else None
        self.chat_model = chat_model
        self.notes = RunNotes(services.redis, settings.redis.prefix, settings.redis.ttl)
        self.recovery = Recovery(self)  # graph.recovery.runs: what a crash left unfinished, finished first
        self.prefs = PreferenceStore.of(services)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        services: Services | None = None,
        chat_model: BaseChatModel | None = None,
        now: Callable[[], datetime] = wall_clock,
        clock_owner: bool = False,
    ) -> AsyncIterator[Copilot]:
        """Open the Redis saver (and the services when not given), yield a ready Copilot, close on exit.
        `clock_owner`: this process is a server, which owns the shared replay clock (others only read it)."""
        redis: aioredis.Redis | None = None
        if services is None:
            redis = async_client(settings.effective_redis_url)
            services = await build_services(settings, redis, clock_owner=clock_owner)
        model = chat_model
        if model is None:
            from graph.model.client import build_chat_model
            from graph.model.ollama_model import with_copilot_model

            settings = await with_copilot_model(settings)  # `<model>-copilot` when Ollama has it
            model = build_chat_model(settings)
        try:
            async with open_checkpointer(settings) as saver:
                compiled = build_graph(services, settings, model, now).compile(checkpointer=saver)
                yield cls(compiled, services, settings, saver, chat_model)
        finally:
            if redis is not None:
                await services.aclose()
                await redis.aclose()

    # --- runs ---------------------------------------------------------------------------------------

    async def _context(
        self, user_id: str, session_id: str, symbol: str | None, turn_id: str | None = None
    ) -> Context:
        """The run's runtime context (`turn_id`: the chat turn it answers); remembers the session's symbol
        and indexes the session (one trip)."""
        key = f"{self.settings.redis.prefix}session:{thread_id(user_id, session_id)}"
        async with self.services.redis.pipeline(transaction=False) as pipe:
            if symbol:
                pipe.hset(key, "symbol", symbol.upper())
            pipe.hget(key, "symbol")
            if self.settings.redis.ttl > 0:
                pipe.expire(key, self.settings.redis.ttl)
            pipe.sadd(f"{self.settings.redis.prefix}sessions:{user_id}", session_id)
            pipe.hgetall(self.prefs.key(user_id))
            replies = await pipe.execute()
        stored = replies[1 if symbol else 0]
        prefs = self.prefs.parse(replies[-1])
        if (
            not stored
        ):  # a new session starts on the trader's symbol, and keeps it when the preference changes
            stored = prefs.symbol or DEFAULT_SYMBOL
            async with self.services.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, "symbol", stored)
                if self.settings.redis.ttl > 0:
                    pipe.expire(key, self.settings.redis.ttl)
                await pipe.execute()
        return Context(
            user_id=user_id,
            account_id=account_for(user_id),
            session_symbol=str(stored),
            risk_per_trade_pct=self.prefs.effective_risk_pct(prefs),
            language=prefs.language,
            turn_id=turn_id,
        )

    @asynccontextmanager
    async def _noted(
        self, thread: str, message: str, symbol: str | None, snapshot: StateSnapshot, turn_id: str | None
    ) -> AsyncIterator[str]:
        """A chat turn noted while it runs (graph.recovery): a note left behind means its worker died.
        Yields the turn's id (`turn_id` when it runs again, else a new one)."""
        turn = OpenTurn(message, symbol, checkpoint_of(snapshot))
        turn = replace(turn, turn_id=turn_id) if turn_id else turn
        await self.notes.begin_turn(thread, turn)
        try:
            yield turn.turn_id
        finally:  # ended here however it ended: this worker is alive, the trader saw the answer or the error
            try:
                await self.notes.end_turn(thread)
            except Exception as exc:  # Redis away: the note's checkpoint check tells it ended
                log.warning("could not remove the turn note of %s: %s", thread, exc)

    async def _begin(
        self, user_id: str, session_id: str, command: SlashCommand | None, own: QueuedDecision | None = None
    ) -> Turn | ChatResult:
        """One checkpoint read before a message's run: what a crash left unfinished completed first, and the
        message as a decision on the pending proposal if it is one. A ChatResult when the message cannot run
        (the recovery failed, a typed decision was refused or repeats one already applied). `own`: the
        message's own queued-decision note (not recovered as another's)."""
        try:
            snapshot = await self._snapshot(user_id, session_id)
            recovered, decided = await self.recovery.after_crash(user_id, session_id, snapshot, own)
            if recovered is not None:
                snapshot = await self._snapshot(user_id, session_id)
            pending = pending_proposal(snapshot)
            decision = typed_decision(command, pending)
            if decision is None and pending is None and isinstance(command, DecisionCommand):
                if recovered is not None and decided:  # about the decision run just completed
                    return recovered
                given = command.proposal_id.strip() if command.decision == "approve" else ""
                repeated = await self._how_it_ended(user_id, session_id, snapshot, given)
                if repeated is not None:  # a decision typed again: how it ended, not "nothing waits"
                    return merge_results(recovered, repeated)
            return Turn(snapshot, recovered, decided, decision, command)
        except RecoveryFailed as failed:
            turn = await self.notes.open_turn(thread_id(user_id, session_id))
            if turn is not None and turn.failed:  # told now: not again at the next message
                await self.notes.end_turn(thread_id(user_id, session_id))
            return ChatResult(response=str(failed))
        except DecisionRefused as refused:
            return refused.result()

    async def preferences_reply(self, user_id: str, session_id: str, command: PrefsCommand) -> ChatResult:
        """`/prefs` in any chat (web page, CLI, Telegram): show or set the trader's preferences, with no model
        and no graph run (the thread is untouched; a pending proposal still waits, sized as it was)."""
        try:
            if command.changes:
                prefs = await self.prefs.update(user_id, command.changes)
                said = "Saved / Guardado. "
            else:
                prefs, said = await self.prefs.get(user_id), ""
            text = said + preferences_text(prefs, self.prefs.models.cap_pct)
        except BadPreference as bad:
            text = f"/prefs: {bad}. Nothing was saved / No se guardó nada."
        pending = pending_proposal(await self._snapshot(user_id, session_id))
        return ChatResult(response=text, pending_approval=pending)

    async def queue_typed_decision(
        self, user_id: str, session_id: str, message: str
    ) -> QueuedDecision | None:
        """A typed `/approve` or `/reject` noted like the endpoint's decisions (see `queue_decision`), tied
        to the proposal pending now, the one the trader saw; None when the message is not a decision on a
        pending proposal or cannot be tied to it (its run answers why). Pass it to `chat`/`stream`."""
        state = await self.state(user_id, session_id)
        try:
            decision = typed_decision(parse_slash(message), state.pending_approval if state else None)
        except DecisionRefused:
            return None
        return None if decision is None else await self.queue_decision(user_id, session_id, decision)

    async def chat(
        self,
        user_id: str,
        session_id: str,
        message: str,
        symbol: str | None = None,
        queued: QueuedDecision | None = None,
    ) -> ChatResult:
        try:
            return await self._chat(user_id, session_id, message, symbol, queued)
        finally:  # as in `decide`
            if queued is not None:
                await self.drop_decision(user_id, session_id, queued)

    async def _chat(
        self, user_id: str, session_id: str, message: str, symbol: str | None, queued: QueuedDecision | None
    ) -> ChatResult:
        command = parse_slash(message)
        if isinstance(command, PrefsCommand):
            return await self.preferences_reply(user_id, session_id, command)
        # The result comes from the run's own stream, not from reading the thread again.
        turn = await self._begin(user_id, session_id, command, queued)
        if isinstance(turn, ChatResult):
            return turn
        if turn.decision is not None:
            # A decision about a run that was just completed no longer applies: show what happened instead.
            if turn.recovered is not None and turn.decided:
                return turn.recovered
            result = await self._decide(user_id, session_id, turn.decision, turn.snapshot)
        else:
            result = await self._chat_turn(user_id, session_id, message, symbol, turn.snapshot, turn)
        return merge_results(turn.recovered, result)

    async def _chat_turn(
        self,
        user_id: str,
        session_id: str,
        message: str,
        symbol: str | None,
        snapshot: StateSnapshot,
        turn: Turn | None = None,
        turn_id: str | None = None,
    ) -> ChatResult:
        tid = thread_id(user_id, session_id)
        async with self._noted(tid, message, symbol, snapshot, turn_id) as noted:
            payload = turn_input(message, turn)
            result = await self._run(user_id, session_id, payload, symbol, message_ids(snapshot), noted)
        waiting = pending_proposal(snapshot)
        await self.notes.record_ends(tid, waiting["proposal_id"] if waiting else None, result)
        return result

    async def _settle_first(
        self, user_id: str, session_id: str, decision: Decision, own: QueuedDecision | None = None
    ) -> tuple[StateSnapshot, ChatResult | None, ChatResult | None]:
        """Before a decision: the thread, what recovery completed, and the answer when there is nothing left
        to decide (the decision was about the run just completed, or repeats one that ended the proposal).
        `own`: the decision's note, left for this run (not recovered as another's)."""
        snapshot = await self._snapshot(user_id, session_id)
        try:
            recovered, decided = await self.recovery.after_crash(user_id, session_id, snapshot, own)
        except RecoveryFailed as failed:
            return snapshot, None, ChatResult(response=str(failed))
        if recovered is not None and decided:  # the decision was about a run that has just been completed
            return snapshot, recovered, recovered
        if recovered is not None:
            snapshot = await self._snapshot(user_id, session_id)
        pending, pid = pending_proposal(snapshot), str(decision.get("proposal_id") or "?")
        if pending is None or pending["proposal_id"] != pid:
            repeated = await self._how_it_ended(user_id, session_id, snapshot, pid)
            if repeated is not None:
                return snapshot, recovered, merge_results(recovered, repeated)
        return snapshot, recovered, None

    async def _how_it_ended(
        self, user_id: str, session_id: str, snapshot: StateSnapshot, proposal_id: str
    ) -> ChatResult | None:
        """The answer that ended the proposal (its id or a prefix; "" = the newest), shown again: from its
        fate note, else from the thread's last decision (the note lost with the process that decided it)."""
        noted = await self.notes.fate(thread_id(user_id, session_id), proposal_id)
        if noted is not None:
            return noted
        last = decided_result(snapshot, proposal_id)
        return replayed(last, proposal_id) if last is not None else None

    async def queue_decision(self, user_id: str, session_id: str, decision: Decision) -> QueuedDecision:
        """Note a decision before it waits behind a running turn: if this process dies meanwhile, the next
        access to the session applies it (graph.recovery). Pass the note to `decide`/`stream_decision`."""
        return await self.notes.queue_decision(thread_id(user_id, session_id), decision)

    async def drop_decision(self, user_id: str, session_id: str, queued: QueuedDecision) -> None:
        """The queued decision will not run (refused as busy): forget its note."""
        await self.notes.drop_decision(thread_id(user_id, session_id), queued)

    async def decide(
        self, user_id: str, session_id: str, decision: Decision, queued: QueuedDecision | None = None
    ) -> ChatResult:
        try:
            snapshot, recovered, answer = await self._settle_first(user_id, session_id, decision, queued)
            if answer is not None:
                return answer
            return merge_results(recovered, await self._decide(user_id, session_id, decision, snapshot))
        finally:  # it has run (or been refused): its note is done; a kill before here leaves it for recovery
            if queued is not None:
                await self.drop_decision(user_id, session_id, queued)

    async def _decide(
        self, user_id: str, session_id: str, decision: Decision, snapshot: StateSnapshot
    ) -> ChatResult:
        before, pending = require_pending(snapshot)
        try:  # before the resume value reaches the checkpoint writer (which refuses ints beyond 64 bits)
            check_resume(decision)
        except BadDecision as bad:
            return DecisionRefused(f"Not applied: {bad}. The proposal still waits.", pending).result()
        result = await self._run(user_id, session_id, Command(resume=decision), None, before, None)
        await self.notes.record_ends(thread_id(user_id, session_id), pending["proposal_id"], result)
        return result

    async def recover(self, user_id: str, session_id: str) -> ChatResult | None:
        """Finish what a crash (a killed process, a Redis fault, a cancel) left unfinished: a decision run is
        resumed from its last checkpoint, so a recorded approval is carried out (the execute node first asks
        the broker whether the proposal's key already has an order), never abandoned; a chat turn whose
        worker died is run again from the checkpoint it started from. None when nothing was due. Raises
        RecoveryFailed, leaving the thread as it was, when the run still cannot finish."""
        snapshot = await self._snapshot(user_id, session_id)
        return (await self.recovery.after_crash(user_id, session_id, snapshot))[0]

    async def _run(
        self,
        user_id: str,
        session_id: str,
        payload: Any,
        symbol: str | None,
        before: set[str],
        turn: str | None,
    ) -> ChatResult:
        config = self._config(user_id, session_id)
        context = await self._context(user_id, session_id, symbol, turn)
        durability = DURABILITY_DECISION if isinstance(payload, Command) else DURABILITY_CHAT
        end = RunEnd(config)
        modes: list[StreamMode] = ["values", "updates"]
        async for mode, chunk in self.graph.astream(
            payload, config, context=context, stream_mode=modes, durability=durability
        ):
            end.see(mode, chunk)
        await self._prune(config)
        return chat_result(end.snapshot(), before)

    async def _prune(self, config: RunnableConfig) -> None:
        """After a run: the thread's old checkpoints go (settings.checkpoints; interrupts and decisions stay,
        the newest of them). Only after the session's first run and every `prune_every`-th (at most
        keep_last / 2; counted in its session hash: one HINCRBY instead of two index searches), down to
        `keep_last - prune_every + 1`, so chat turns never leave more than keep_last. Best effort: a failure
        only leaves them until the next prune or the TTL."""
        if not isinstance(self.checkpointer, AsyncRedisSaver):
            return
        tid = str(config["configurable"]["thread_id"])
        settings = self.settings.checkpoints
        if settings.keep_last <= 0:
            return
        try:
            every = min(settings.prune_every, max(settings.keep_last // 2, 1))
            if every > 1:
                runs = await self.services.redis.hincrby(
                    f"{self.settings.redis.prefix}session:{tid}", "runs", 1
                )
                if runs != 1 and runs % every:
                    return
            keep = max(settings.keep_last - every + 1, 1)
            await prune_thread(self.checkpointer, tid, keep, keep_protected=max(settings.keep_last, 2))
        except Exception as exc:
            log.warning("could not prune the checkpoints of %s: %s", tid, exc)

    async def stream(
        self,
        user_id: str,
        session_id: str,
        message: str,
        symbol: str | None = None,
        queued: QueuedDecision | None = None,
    ) -> AsyncIterator[Event]:
        try:
            async for event in self._stream_message(user_id, session_id, message, symbol, queued):
                yield event
        finally:  # as in `decide`
            if queued is not None:
                await self.drop_decision(user_id, session_id, queued)

    async def _stream_message(
        self, user_id: str, session_id: str, message: str, symbol: str | None, queued: QueuedDecision | None
    ) -> AsyncIterator[Event]:
        command = parse_slash(message)
        if isinstance(command, PrefsCommand):
            answer = await self.preferences_reply(user_id, session_id, command)
            yield {"event": "final", "data": answer.model_dump()}
            return
        turn = await self._begin(user_id, session_id, command, queued)
        if isinstance(turn, ChatResult):
            yield {"event": "final", "data": turn.model_dump()}
            return
        recovered = turn.recovered
        if recovered is not None:
            yield {"event": "recovered", "data": recovered.model_dump()}
        if turn.decision is not None and recovered is not None and turn.decided:
            yield {"event": "final", "data": recovered.model_dump()}
            return
        if turn.decision is not None:
            events = self._stream_decision(user_id, session_id, turn.decision, turn.snapshot)
        else:
            events = self._stream_turn(user_id, session_id, message, symbol, turn.snapshot, turn)
        async for event in events:
            if event["event"] == "final" and recovered is not None:
                event = {**event, "data": merge_results(recovered, ChatResult(**event["data"])).model_dump()}
            yield event

    async def _stream_turn(
        self,
        user_id: str,
        session_id: str,
        message: str,
        symbol: str | None,
        snapshot: StateSnapshot,
        turn: Turn,
    ) -> AsyncIterator[Event]:
        tid = thread_id(user_id, session_id)
        waiting = pending_proposal(snapshot)
        async with self._noted(tid, message, symbol, snapshot, None) as noted:
            payload = turn_input(message, turn)
            before = message_ids(snapshot)
            async for event in self._stream(user_id, session_id, payload, symbol, before, noted):
                if event["event"] == "final":
                    result = ChatResult(**event["data"])
                    await self.notes.record_ends(tid, waiting["proposal_id"] if waiting else None, result)
                yield event

    async def stream_decision(
        self, user_id: str, session_id: str, decision: Decision, queued: QueuedDecision | None = None
    ) -> AsyncIterator[Event]:
        try:
            snapshot, recovered, answer = await self._settle_first(user_id, session_id, decision, queued)
            if answer is not None:
                yield {"event": "final", "data": answer.model_dump()}
                return
            if recovered is not None:
                yield {"event": "recovered", "data": recovered.model_dump()}
            async for event in self._stream_decision(user_id, session_id, decision, snapshot):
                if event["event"] == "final" and recovered is not None:
                    merged = merge_results(recovered, ChatResult(**event["data"]))
                    event = {**event, "data": merged.model_dump()}
                yield event
        finally:  # as in `decide`
            if queued is not None:
                await self.drop_decision(user_id, session_id, queued)

    async def _stream_decision(
        self, user_id: str, session_id: str, decision: Decision, snapshot: StateSnapshot
    ) -> AsyncIterator[Event]:
        before, pending = require_pending(snapshot)
        try:
            check_resume(decision)
        except BadDecision as bad:
            refused = DecisionRefused(f"Not applied: {bad}. The proposal still waits.", pending)
            yield {"event": "final", "data": refused.result().model_dump()}
            return
        tid = thread_id(user_id, session_id)
        async for event in self._stream(user_id, session_id, Command(resume=decision), None, before, None):
            if event["event"] == "final":
                await self.notes.record_ends(tid, pending["proposal_id"], ChatResult(**event["data"]))
            yield event

    async def _stream(
        self,
        user_id: str,
        session_id: str,
        payload: Any,
        symbol: str | None,
        before: set[str],
        turn: str | None,
    ) -> AsyncIterator[Event]:
        config = self._config(user_id, session_id)
        try:
            context = await self._context(user_id, session_id, symbol, turn)
            modes: list[StreamMode] = ["tasks", "messages", "custom", "updates", "values"]
            durability = DURABILITY_DECISION if isinstance(payload, Command) else DURABILITY_CHAT
            end = RunEnd(config)
            async for mode, chunk in self.graph.astream(
                payload, config, context=context, stream_mode=modes, durability=durability
            ):
                end.see(mode, chunk)
                for event in to_events(mode, chunk):
                    yield event
            await self._prune(config)
            result = chat_result(end.snapshot(), before)
        except Exception as exc:  # the thread stays usable: the last good checkpoint is untouched
            yield {"event": "error", "data": {"message": f"{type(exc).__name__}: {exc}"}}
            return
        yield {"event": "final", "data": result.model_dump()}

    async def model_status(self) -> str:
        """ "ok" | "down" | "model_missing" (a model passed in, e.g. a test double, counts as ok)."""
        if self.chat_model is not None:
            return "ok"
        if self.settings.llm.provider == "openai":
            from graph.model.openai_server import openai_model_status

            return await openai_model_status(self.settings)
        from graph.model.ollama_server import model_status

        return await model_status(self.settings)
