"""load_context: reset the turn, fetch cached market/portfolio snapshots, bound the stored conversation."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import HumanMessage, RemoveMessage, ToolMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.messages import removals
from graph.state import TURN_RESET, State

log = logging.getLogger(__name__)

Node = Callable[[State, Runtime[Context]], Awaitable[dict[str, Any]]]


def stored_message_cap(deps: Deps) -> int:
    # The model sees max_history messages; a little more is kept so trimming has whole groups to choose from.
    return max(4 * deps.settings.context.max_history, 24)


async def cached(
    deps: Deps, key: str, ttl_s: int, fetch: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    redis = deps.services.redis
    hit = await redis.get(key)
    if hit:
        value: dict[str, Any] = json.loads(hit)
        return value
    value = await fetch()
    if ttl_s > 0:
        await redis.set(key, json.dumps(value, default=str), ex=ttl_s)
    return value


async def _market(deps: Deps, symbol: str) -> dict[str, Any] | None:
    if not deps.settings.context.include_market_context:
        return None

    async def fetch() -> dict[str, Any]:
        return (await deps.services.signals.analyze(symbol)).model_dump(mode="json")

    return await cached(
        deps, f"{deps.prefix}ctx:market:{symbol}", deps.settings.context.market_cache_ttl, fetch
    )


async def _portfolio(deps: Deps, account_id: str) -> dict[str, Any] | None:
    if not deps.settings.context.include_portfolio:
        return None

    async def fetch() -> dict[str, Any]:
        return (await deps.services.broker.get_portfolio(account_id)).model_dump(mode="json")

    key = f"{deps.prefix}ctx:portfolio:{account_id}"
    return await cached(deps, key, deps.settings.context.portfolio_cache_ttl, fetch)


async def invalidate_portfolio(deps: Deps, account_id: str) -> None:
    """After an order the cached snapshot is stale; the next turn must see the new position."""
    await deps.services.redis.delete(f"{deps.prefix}ctx:portfolio:{account_id}")


def make_load_context(deps: Deps) -> Node:
    async def load_context(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        update: dict[str, Any] = dict(TURN_RESET)
        messages = list(state.get("messages", []))
        market = portfolio = None
        try:
            market = await _market(deps, ctx.session_symbol)
            portfolio = await _portfolio(deps, ctx.account_id)
        except Exception as exc:  # the chat must work even when a service is down
            log.warning("live context unavailable: %s", exc)
        update.update(market=market, portfolio=portfolio)
        reorder: list[Any] = []
        stale = bool(state.get("proposal")) and bool(messages) and isinstance(messages[-1], HumanMessage)
        abandoned = await _abandon_stale(deps, ctx, state) if stale else None
        if abandoned is not None:
            await deps.audit.append("abandoned", ctx.user_id, thread_id(), state.get("proposal") or {})
            update.update(proposal=None, pending_call=None)
            # The answer to the open tool call must precede the new question: re-append the question after it.
            human = messages.pop()
            again = HumanMessage(content=human.content, id=str(uuid.uuid4()))
            reorder = [RemoveMessage(id=str(human.id)), abandoned, again]
            messages += [abandoned, again]
        update["messages"] = [*removals(messages, stored_message_cap(deps)), *reorder]
        return update

    return load_context


async def _abandon_stale(deps: Deps, ctx: Context, state: State) -> ToolMessage | None:
    """A proposal left pending when the trader moved on: answer its tool call so the history stays valid.

    "Nothing executed" is said only when it is known: a proposal whose earlier send went unanswered
    (`attempts`) is looked up at the broker under its key first.
    """
    call, proposal = state.get("pending_call"), state.get("proposal")
    if not proposal or not call:
        return None
    content = "Proposal abandoned: the trader sent a new message instead of deciding; nothing executed."
    if proposal.get("attempts"):
        try:
            found = await deps.services.broker.find_order(str(proposal["proposal_id"]), ctx.account_id)
        except Exception as exc:
            content = (
                "Proposal abandoned; whether its earlier, unanswered attempt was placed is unknown "
                f"(the broker could not be asked: {exc}). Check /portfolio."
            )
        else:
            if found is not None and found.success:
                content = f"EXECUTED: {found.message} (the earlier attempt's reply was lost; it was placed)."
            elif found is not None:
                content = f"Proposal abandoned; the broker refused the earlier attempt: {found.message}"
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])


def thread_id() -> str:
    """The running thread's id (from the run config; the runtime context carries only user facts)."""
    return str(get_config().get("configurable", {}).get("thread_id", ""))
