"""The graph facade: all the server, the CLI and notebooks need (chat, decide, sessions); one per process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot, StreamMode

from config import Settings
from graph.approval import Decision, Proposal
from graph.audit import AuditTrail
from graph.builder import build_graph
from graph.checkpointer import DURABILITY_CHAT, DURABILITY_DECISION, open_checkpointer
from graph.context import DEFAULT_SYMBOL, Context
from graph.deps import wall_clock
from graph.nodes.human_approval import BadDecision, check_resume
from graph.results import (
    RunEnd,
    chat_result,
    checkpoint_info,
    interrupted,
    merge_results,
    pending_proposal,
    session_state,
)
from graph.schemas import ChatResult, CheckpointInfo, SessionState
from graph.slash import DecisionRefused, typed_decision
from graph.streaming import Event, to_events
from graph.threads import account_for, thread_id
from tools.services import Services, build_services

log = logging.getLogger(__name__)


class NoPendingApproval(Exception):
    """A decision arrived but the session is not waiting for one (HTTP 409)."""


class RecoveryFailed(Exception):
    """An interrupted run could not be completed (broker or Redis still away); the thread is untouched."""


def message_ids(snapshot: StateSnapshot) -> set[str]:
    return {str(m.id) for m in (snapshot.values or {}).get("messages", [])}


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
    decision: Decision | None


class Copilot:
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
            redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
            services = await build_services(settings, redis, clock_owner=clock_owner)
        model = chat_model
        if model is None:
            from graph.llm import build_chat_model

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

    def _config(self, user_id: str, session_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id(user_id, session_id)}}

    async def _context(self, user_id: str, session_id: str, symbol: str | None) -> Context:
        """The run's runtime context; remembers the session's symbol and indexes the session (one trip)."""
        key = f"{self.settings.redis.prefix}session:{thread_id(user_id, session_id)}"
        async with self.services.redis.pipeline(transaction=False) as pipe:
            if symbol:
                pipe.hset(key, "symbol", symbol.upper())
            pipe.hget(key, "symbol")
            if self.settings.redis.ttl > 0:
                pipe.expire(key, self.settings.redis.ttl)
            pipe.sadd(f"{self.settings.redis.prefix}sessions:{user_id}", session_id)
            replies = await pipe.execute()
        stored = replies[1 if symbol else 0]
        return Context(
            user_id=user_id, account_id=account_for(user_id), session_symbol=str(stored or DEFAULT_SYMBOL)
        )

    async def _snapshot(self, user_id: str, session_id: str) -> StateSnapshot:
        return await self.graph.aget_state(self._config(user_id, session_id))

    async def _begin(self, user_id: str, session_id: str, message: str) -> Turn | ChatResult:
        """One checkpoint read before a message's run: an interrupted run completed first, and the message as
        a decision on the pending proposal if it is one. A ChatResult when the message cannot run (the
        recovery failed, or a typed decision was refused: the proposal still waits)."""
        try:
            snapshot = await self._snapshot(user_id, session_id)
            recovered = await self._recover(user_id, session_id, snapshot)
            if recovered is not None:
                snapshot = await self._snapshot(user_id, session_id)
            return Turn(snapshot, recovered, typed_decision(message, pending_proposal(snapshot)))
        except RecoveryFailed as failed:
            return ChatResult(response=str(failed))
        except DecisionRefused as refused:
            return refused.result()

    async def chat(
        self, user_id: str, session_id: str, message: str, symbol: str | None = None
    ) -> ChatResult:
        # The result comes from the run's own stream, not from reading the thread again.
        turn = await self._begin(user_id, session_id, message)
        if isinstance(turn, ChatResult):
            return turn
        if turn.decision is not None:
            # A decision about a run that was just completed no longer applies: show what happened instead.
            return turn.recovered or await self._decide(user_id, session_id, turn.decision, turn.snapshot)
        payload = {"messages": [HumanMessage(message)]}
        result = await self._run(user_id, session_id, payload, symbol, message_ids(turn.snapshot))
        return merge_results(turn.recovered, result)

    async def decide(self, user_id: str, session_id: str, decision: Decision) -> ChatResult:
        snapshot = await self._snapshot(user_id, session_id)
        try:
            recovered = await self._recover(user_id, session_id, snapshot)
        except RecoveryFailed as failed:
            return ChatResult(response=str(failed))
        if recovered is not None:  # the decision was about a run that has just been completed
            return recovered
        return await self._decide(user_id, session_id, decision, snapshot)

    async def _decide(
        self, user_id: str, session_id: str, decision: Decision, snapshot: StateSnapshot
    ) -> ChatResult:
        before, pending = require_pending(snapshot)
        try:  # before the resume value reaches the checkpoint writer (which refuses ints beyond 64 bits)
            check_resume(decision)
        except BadDecision as bad:
            return DecisionRefused(f"Not applied: {bad}. The proposal still waits.", pending).result()
        return await self._run(user_id, session_id, Command(resume=decision), None, before)

    async def recover(self, user_id: str, session_id: str) -> ChatResult | None:
        """Finish a run that stopped between steps (a killed process, a Redis fault, a cancel): resume it
        from its last checkpoint. A recorded approval is thus carried out (the execute node first asks the
        broker whether the proposal's key already has an order), never abandoned; None when nothing was due.
        Raises RecoveryFailed, leaving the thread as it was, when the run still cannot finish."""
        return await self._recover(user_id, session_id, await self._snapshot(user_id, session_id))

    async def _recover(self, user_id: str, session_id: str, snapshot: StateSnapshot) -> ChatResult | None:
        if not interrupted(snapshot):
            return None
        config = self._config(user_id, session_id)
        before = message_ids(snapshot)
        context = await self._context(user_id, session_id, None)
        try:
            await self.graph.ainvoke(None, config, context=context, durability=DURABILITY_DECISION)
        except Exception as exc:
            log.exception("could not complete the interrupted run of %s", config["configurable"]["thread_id"])
            raise RecoveryFailed(
                "A run of this session stopped before its end (an approved order may be involved) and "
                f"could not be completed yet ({type(exc).__name__}: {exc}). Nothing else was done; "
                "try again shortly."
            ) from exc
        result = chat_result(await self.graph.aget_state(config), before)
        audit = AuditTrail(self.services.redis, self.settings.redis.prefix)
        await audit.append("recovered", user_id, thread_id(user_id, session_id), {"order": result.order})
        note = "(Completed a run that was interrupted before its end.)"
        return result.model_copy(update={"response": f"{note}\n{result.response}"})

    async def _run(
        self, user_id: str, session_id: str, payload: Any, symbol: str | None, before: set[str]
    ) -> ChatResult:
        config = self._config(user_id, session_id)
        context = await self._context(user_id, session_id, symbol)
        durability = DURABILITY_DECISION if isinstance(payload, Command) else DURABILITY_CHAT
        end = RunEnd(config)
        modes: list[StreamMode] = ["values", "updates"]
        async for mode, chunk in self.graph.astream(
            payload, config, context=context, stream_mode=modes, durability=durability
        ):
            end.see(mode, chunk)
        return chat_result(end.snapshot(), before)

    async def stream(
        self, user_id: str, session_id: str, message: str, symbol: str | None = None
    ) -> AsyncIterator[Event]:
        turn = await self._begin(user_id, session_id, message)
        if isinstance(turn, ChatResult):
            yield {"event": "final", "data": turn.model_dump()}
            return
        recovered = turn.recovered
        if recovered is not None:
            yield {"event": "recovered", "data": recovered.model_dump()}
        if turn.decision is not None:
            if recovered is not None:
                yield {"event": "final", "data": recovered.model_dump()}
                return
            async for event in self._stream_decision(user_id, session_id, turn.decision, turn.snapshot):
                yield event
            return
        payload = {"messages": [HumanMessage(message)]}
        async for event in self._stream(user_id, session_id, payload, symbol, message_ids(turn.snapshot)):
            if event["event"] == "final" and recovered is not None:
                event = {**event, "data": merge_results(recovered, ChatResult(**event["data"])).model_dump()}
            yield event

    async def stream_decision(
        self, user_id: str, session_id: str, decision: Decision
    ) -> AsyncIterator[Event]:
        snapshot = await self._snapshot(user_id, session_id)
        try:
            recovered = await self._recover(user_id, session_id, snapshot)
        except RecoveryFailed as failed:
            recovered = ChatResult(response=str(failed))
        if recovered is not None:  # the decision was about a run that has just been completed
            yield {"event": "final", "data": recovered.model_dump()}
            return
        async for event in self._stream_decision(user_id, session_id, decision, snapshot):
            yield event

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
        async for event in self._stream(user_id, session_id, Command(resume=decision), None, before):
            yield event

    async def _stream(
        self, user_id: str, session_id: str, payload: Any, symbol: str | None, before: set[str]
    ) -> AsyncIterator[Event]:
        config = self._config(user_id, session_id)
        try:
            context = await self._context(user_id, session_id, symbol)
            modes: list[StreamMode] = ["tasks", "messages", "custom", "updates", "values"]
            durability = DURABILITY_DECISION if isinstance(payload, Command) else DURABILITY_CHAT
            end = RunEnd(config)
            async for mode, chunk in self.graph.astream(
                payload, config, context=context, stream_mode=modes, durability=durability
            ):
                end.see(mode, chunk)
                for event in to_events(mode, chunk):
                    yield event
            result = chat_result(end.snapshot(), before)
        except Exception as exc:  # the thread stays usable: the last good checkpoint is untouched
            yield {"event": "error", "data": {"message": f"{type(exc).__name__}: {exc}"}}
            return
        yield {"event": "final", "data": result.model_dump()}

    # --- sessions -----------------------------------------------------------------------------------

    async def state(self, user_id: str, session_id: str) -> SessionState | None:
        snapshot = await self.graph.aget_state(self._config(user_id, session_id))
        if snapshot.created_at is None:
            return None
        return session_state(session_id, snapshot)

    async def history(self, user_id: str, session_id: str, limit: int = 20) -> list[CheckpointInfo]:
        config = self._config(user_id, session_id)
        return [checkpoint_info(s) async for s in self.graph.aget_state_history(config, limit=limit)]

    async def checkpoint(self, user_id: str, session_id: str, checkpoint_id: str) -> SessionState | None:
        config = self._config(user_id, session_id)
        config["configurable"]["checkpoint_id"] = checkpoint_id
        if self.checkpointer is None or await self.checkpointer.aget_tuple(config) is None:
            return None
        return session_state(session_id, await self.graph.aget_state(config))

    async def clear(self, user_id: str, session_id: str) -> bool:
        """Forget the conversation (and any pending proposal) but keep the session."""
        config = self._config(user_id, session_id)
        snapshot = await self.graph.aget_state(config)
        if snapshot.created_at is None:
            return False
        reset = {
            "messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)],
            "proposal": None,
            "pending_call": None,
            "verdict": None,
            "decision": None,
            "outcome": None,
            "last_signal": None,
            "turn_signal": None,
        }
        # As if load_context had run: the paused approval task is dropped, nothing left to resume.
        await self.graph.aupdate_state(config, reset, as_node="load_context")
        await self.graph.aupdate_state(config, {}, as_node="reason")
        return True

    async def delete(self, user_id: str, session_id: str) -> bool:
        tid = thread_id(user_id, session_id)
        existed = (await self.graph.aget_state(self._config(user_id, session_id))).created_at is not None
        if self.checkpointer is not None:
            await self.checkpointer.adelete_thread(tid)
        prefix = self.settings.redis.prefix
        await self.services.redis.srem(f"{prefix}sessions:{user_id}", session_id)
        await self.services.redis.delete(f"{prefix}session:{tid}")
        return existed

    async def interrupted_sessions(self) -> list[tuple[str, str]]:
        """(user, session) of each indexed session whose last run stopped before its end (the start sweep)."""
        prefix = self.settings.redis.prefix
        found = []
        async for key in self.services.redis.scan_iter(match=f"{prefix}sessions:*", count=500):
            user_id = str(key)[len(f"{prefix}sessions:") :]
            for session_id in await self.services.redis.smembers(key):
                config = self._config(user_id, str(session_id))
                if interrupted(await self.graph.aget_state(config)):
                    found.append((user_id, str(session_id)))
        return found

    async def sessions(self, user_id: str) -> list[str]:
        thread_id(user_id, "x")  # validates the user id
        members = await self.services.redis.smembers(f"{self.settings.redis.prefix}sessions:{user_id}")
        alive = []
        for session_id in sorted(str(m) for m in members):
            if (await self.graph.aget_state(self._config(user_id, session_id))).created_at is not None:
                alive.append(session_id)
        return alive

    async def model_status(self) -> str:
        """ "ok" | "down" | "model_missing" (a model passed in, e.g. a test double, counts as ok)."""
        if self.chat_model is not None:
            return "ok"
        if self.settings.llm.provider == "openai":
            from graph.openai_server import openai_model_status

            return await openai_model_status(self.settings)
        from graph.ollama_server import model_status

        return await model_status(self.settings)
