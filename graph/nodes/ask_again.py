"""ask_again: at the end of a turn that did not decide the pending proposal, pause on it again.

The turn answered the proposal's open call with a PENDING note (load_context), so the same call is re-issued
under a new id: the transcript stays valid and the decision, whenever it comes, answers that new call.
"""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, ToolCall
from langgraph.runtime import Runtime

from graph.answers import render
from graph.approval import PendingCall
from graph.approval_reply import shown_args
from graph.deps import Deps, Node, run_thread_id
from graph.pending import STILL_WAITING, expired, expired_fact
from graph.state import State
from tools.context import Context, required


def make_ask_again(deps: Deps) -> Node:
    async def ask_again(state: State, runtime: Runtime[Context]) -> State:
        proposal, call = state.get("proposal"), state.get("pending_call")
        if proposal is None or call is None:  # routing only comes here with one
            return State(proposal=None, pending_call=None)
        if expired(proposal, deps.now()):  # expired during the turn: said, and dropped
            ctx = required(runtime.context)
            await deps.audit.append("expired", ctx.user_id, run_thread_id(), proposal)
            return State(
                messages=[AIMessage(render(expired_fact(proposal)))], proposal=None, pending_call=None
            )
        again = PendingCall(**{**call, "id": f"again_{uuid.uuid4().hex[:12]}"})
        notice = proposal["notice"] or ""
        if STILL_WAITING not in notice:
            notice = "\n".join(n for n in (STILL_WAITING, notice) if n)
        message = AIMessage(
            content="", tool_calls=[ToolCall(name=again["name"], args=shown_args(again), id=again["id"])]
        )
        return State(messages=[message], pending_call=again, proposal={**proposal, "notice": notice})

    return ask_again
