"""The facade's session views (state, checkpoint history, clear, delete, the user's sessions) and what a
crash left unfinished in them; graph.copilot.Copilot has them."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import RemoveMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from config import Settings
from graph import live_contexts
from graph.recovery.notes import RunNotes
from graph.results import checkpoint_info, interrupted, session_state
from graph.schemas import CheckpointInfo, SessionState
from graph.threads import thread_id
from tools.services import Services


class SessionViews:
    """Reading and resetting sessions; the threads are the graph's, keyed user:session."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    services: Services
    settings: Settings
    checkpointer: BaseCheckpointSaver[Any] | None
    notes: RunNotes

    def _config(self, user_id: str, session_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id(user_id, session_id)}}

    async def _snapshot(self, user_id: str, session_id: str) -> StateSnapshot:
        return await self.graph.aget_state(self._config(user_id, session_id))

    async def turn_open(self, user_id: str, session_id: str) -> bool:
        """A chat turn is noted as running (live under its lease, or its worker died: graph.recovery)."""
        return await self.notes.open_turn(thread_id(user_id, session_id)) is not None

    async def decision_queued(self, user_id: str, session_id: str) -> bool:
        """A decision is noted as waiting for the session (live behind a run, or its process died)."""
        return await self.notes.queued_decision(thread_id(user_id, session_id)) is not None

    async def unfinished(self, user_id: str, session_id: str, snapshot: StateSnapshot | None = None) -> bool:
        """Something a crash left for recovery: a decision run cut short, a chat turn whose worker died, or
        a decision it had queued (or whose note a live run holds: the session's lease tells them apart)."""
        if interrupted(snapshot or await self._snapshot(user_id, session_id)):
            return True
        return await self.turn_open(user_id, session_id) or await self.decision_queued(user_id, session_id)

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
        await self.notes.forget(thread_id(user_id, session_id))
        return True

    async def delete(self, user_id: str, session_id: str) -> bool:
        tid = thread_id(user_id, session_id)
        existed = (await self.graph.aget_state(self._config(user_id, session_id))).created_at is not None
        if self.checkpointer is not None:
            await self.checkpointer.adelete_thread(tid)
        prefix = self.settings.redis.prefix
        await self.services.redis.srem(f"{prefix}sessions:{user_id}", session_id)
        await self.services.redis.delete(f"{prefix}session:{tid}", *live_contexts.keys(prefix, tid))
        await self.notes.forget(tid)
        return existed

    async def interrupted_sessions(self) -> list[tuple[str, str]]:
        """(user, session) of each indexed session a crash left unfinished (the start sweep)."""
        prefix = self.settings.redis.prefix
        found = []
        async for key in self.services.redis.scan_iter(match=f"{prefix}sessions:*", count=500):
            user_id = str(key)[len(f"{prefix}sessions:") :]
            for session_id in await self.services.redis.smembers(key):
                if await self.unfinished(user_id, str(session_id)):
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
