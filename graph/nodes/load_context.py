"""load_context: reset the turn, bound the stored conversation; and the cached market/portfolio snapshots the
reason node fetches when it pins a turn's live context."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel

from graph.answers import fact_message
from graph.deps import Deps, Node, run_thread_id
from graph.messages import removals
from graph.pending import expired, expired_fact, held_message
from graph.state import TURN_RESET, State
from prompts.window import counts
from tools.context import Context, required
from tools.schemas import JsonObject

log = logging.getLogger(__name__)


def stored_message_cap(deps: Deps) -> int:
    """Counted as the model window counts (prompts.window.counts: a turn's tool rounds are part of it): the
    window holds at most 2×max_history such messages with the new trader message, so 2×max_history + 2 (one
    turn more) never drops the window's start. Every checkpoint stores the whole conversation, so each
    message kept beyond the window costs once per kept checkpoint; it is also what GET /api/sessions/{id}
    shows after a reload (the last max_history + 1 turns, 11 by default)."""
    return max(2 * deps.settings.context.max_history + 2, 12)


async def cached(deps: Deps, key: str, ttl_s: int, fetch: Callable[[], Awaitable[BaseModel]]) -> JsonObject:
    """A service's answer as JSON, from the Redis cache when it holds one younger than `ttl_s`."""
    redis = deps.services.redis
    hit = await redis.get(key)
    if hit:
        value: JsonObject = json.loads(hit)
        return value
    value = (await fetch()).model_dump(mode="json")
    if ttl_s > 0:
        await redis.set(key, json.dumps(value, default=str), ex=ttl_s)
    return value


async def context_snapshots(deps: Deps, ctx: Context) -> State:
    """The market analysis of the session's symbol and the account's portfolio, as each is enabled."""
    settings, services = deps.settings.context, deps.services
    market = portfolio = None
    try:
        if settings.include_market_context:
            key = f"{deps.prefix}ctx:market:{ctx.session_symbol}"
            market = await cached(
                deps, key, settings.market_cache_ttl, lambda: services.signals.analyze(ctx.session_symbol)
            )
        if settings.include_portfolio:
            key = deps.portfolio_key(ctx.account_id)
            portfolio = await cached(
                deps, key, settings.portfolio_cache_ttl, lambda: services.broker.get_portfolio(ctx.account_id)
            )
    except Exception as exc:  # the chat must work even when a service is down
        log.warning("live context unavailable: %s", exc)
    return State(market=market, portfolio=portfolio)


def make_load_context(deps: Deps) -> Node:
    async def load_context(state: State, runtime: Runtime[Context]) -> State:
        ctx = required(runtime.context)
        update = State(**TURN_RESET)
        if state.get("market") is not None or state.get("portfolio") is not None:
            # Stored by earlier versions: reason fetches the snapshots when it pins a turn, so no checkpoint
            # needs to keep them (graph.live_contexts).
            update["market"] = update["portfolio"] = None
        messages = list(state.get("messages", []))
        reorder: list[BaseMessage] = []
        answer = await _answer_pending(deps, ctx, state, update) if _waiting(state, messages) else None
        if answer is not None:
            # The answer to the open tool call must precede the new question: re-append the question after it.
            human = messages.pop()
            again = HumanMessage(content=human.content, id=str(uuid.uuid4()))
            reorder = [RemoveMessage(id=str(human.id)), answer, again]
            messages += [answer, again]
        # add_messages also takes RemoveMessage updates; the state's type names only what it stores.
        removed = removals(messages, stored_message_cap(deps), counts)
        update["messages"] = cast(list[AnyMessage], [*removed, *reorder])
        return update

    return load_context


def _waiting(state: State, messages: list[AnyMessage]) -> bool:
    """A proposal was pending when the trader sent this turn's message (instead of a decision)."""
    return bool(state.get("proposal") and state.get("pending_call") and messages) and isinstance(
        messages[-1], HumanMessage
    )


async def _answer_pending(deps: Deps, ctx: Context, state: State, update: State) -> ToolMessage | None:
    """The pending proposal's open call answered before the new message: held (it stays pending through
    the turn, see graph.pending) or, past its expiry, cancelled."""
    call, proposal = state.get("pending_call"), state.get("proposal")
    if not proposal or not call:
        return None
    if not expired(proposal, deps.now()):
        return held_message(call, proposal)
    await deps.audit.append("expired", ctx.user_id, run_thread_id(), proposal)
    update["proposal"] = update["pending_call"] = None
    return fact_message(call, [expired_fact(proposal)])
