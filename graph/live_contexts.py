"""The live-context texts of a thread's trader turns, stored once outside its checkpoints.

prompts/window.py pins each trader turn's live context (market, portfolio, limits, time) on its HumanMessage
(`additional_kwargs["live_context"]`). Every checkpoint holds the whole `messages` channel, so inline each
turn's block was stored again in every checkpoint that still had the turn. Instead, the reason node stores
the text once, in a per-thread hash (tools/keys.py SessionKeys, under the session's hash tag; message id →
text, the session's TTL), and the stored message keeps only a reference
(`additional_kwargs["live_context_ref"]`, the hash field).
Before each model call the node puts the texts back on its in-memory copy of the messages (`hydrate`), so
prompts/window.py renders byte for byte what it rendered when the texts were inline. The market and
portfolio snapshots a text is made of are not kept in the state either: reason fetches them (the `ctx:`
caches of graph.nodes.load_context.context_snapshots) only when it pins a turn (`needs_pin`).

Which texts stay: a sorted set beside it orders the fields by when they were
pinned, and only the newest `stored_message_cap + keep_last` stay. The oldest checkpoint pruning keeps
(graph.checkpointer.prune_thread) holds at most `stored_message_cap` messages, and every later run pinned at
most one turn, so every checkpoint inside the kept window still finds each of its turns' texts (time travel
to it renders its prompt). With keep_last 0 (no pruning) nothing is trimmed; the TTL still applies.

A text that is missing (expired, trimmed away for a protected checkpoint outside the kept window, or a
Redis that never had it) does not fail the turn: an older turn is rendered without a live context (the
trader's words alone; the next turn's context is then sent whole or as changes since the last one shown),
and the current turn, when its own text is gone between two model calls, is pinned again with a fresh live
context. When the text cannot be written (Redis down), it stays inline on the message as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from langchain_core.messages import AnyMessage, HumanMessage
from redis.asyncio import Redis

from prompts.window import LIVE_CONTEXT
from tools.keys import SessionKeys
from tools.redis_clients import reply_text

log = logging.getLogger(__name__)

LIVE_CONTEXT_REF = "live_context_ref"


def texts_key(prefix: str, thread_id: str) -> str:
    return SessionKeys(prefix, thread_id).live_contexts


def order_key(prefix: str, thread_id: str) -> str:
    return SessionKeys(prefix, thread_id).live_context_order


def keys(prefix: str, thread_id: str) -> list[str]:
    """The thread's live-context keys (deleted with the session)."""
    return [texts_key(prefix, thread_id), order_key(prefix, thread_id)]


async def hydrate(
    redis: Redis, prefix: str, thread_id: str, messages: Sequence[AnyMessage]
) -> list[AnyMessage]:
    """`messages` with each referenced live context put back inline (copies; the others as they are). A
    missing text: the empty string (rendered as no context) on an older turn; on the newest message, when it
    is a trader's, no context at all, so prompts/window.py pins a fresh one."""
    refs = {
        i: str(m.additional_kwargs[LIVE_CONTEXT_REF])
        for i, m in enumerate(messages)
        if isinstance(m, HumanMessage) and LIVE_CONTEXT_REF in m.additional_kwargs
    }
    if not refs:
        return list(messages)
    fields = sorted(set(refs.values()))
    try:
        found = dict(zip(fields, await redis.hmget(texts_key(prefix, thread_id), fields), strict=True))
    except Exception as exc:  # the turn goes on; the texts count as missing
        log.warning("live contexts of %s unavailable: %s", thread_id, exc)
        found = {}
    newest = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    out = list(messages)
    for i, field in refs.items():
        message = messages[i]
        kwargs = {k: v for k, v in message.additional_kwargs.items() if k != LIVE_CONTEXT_REF}
        text = found.get(field)
        if text is None and i == newest:
            kwargs.pop("window_from", None)  # pinned again, window start included
        else:
            kwargs[LIVE_CONTEXT] = reply_text(text) if text is not None else ""
        out[i] = message.model_copy(update={"additional_kwargs": kwargs})
    return out


def needs_pin(messages: Sequence[AnyMessage]) -> bool:
    """The newest trader message has no live context yet (hydrated messages): the model call about to be made
    pins one (prompts.window.model_window), made from the market and portfolio snapshots."""
    newest = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    return newest is not None and LIVE_CONTEXT not in newest.additional_kwargs


async def store(
    redis: Redis, prefix: str, thread_id: str, message: HumanMessage, ttl_s: int, keep: int
) -> HumanMessage:
    """The message to store for a turn `prompts.window.model_window` just pinned: its live context written to
    the thread's hash, a reference in its place. `keep`: how many texts the thread keeps (0 = all); `ttl_s`
    the session's (0 = none). Unchanged (text inline) when it has no id or the write fails."""
    text = message.additional_kwargs.get(LIVE_CONTEXT)
    if text is None or not message.id:
        return message
    field = str(message.id)
    texts, order = texts_key(prefix, thread_id), order_key(prefix, thread_id)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(texts, field, str(text))
            pipe.zadd(order, {field: time.time()})
            if ttl_s > 0:
                pipe.expire(texts, ttl_s)
                pipe.expire(order, ttl_s)
            if keep > 0:
                pipe.zrange(order, 0, -(keep + 1))
            replies = await pipe.execute()
        old = [reply_text(f) for f in replies[-1]] if keep > 0 else []
        if old:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hdel(texts, *old)
                pipe.zrem(order, *old)
                await pipe.execute()
    except Exception as exc:  # kept inline: bigger checkpoints, the same prompt
        log.warning("could not store the live context of %s: %s", thread_id, exc)
        return message
    kwargs = {k: v for k, v in message.additional_kwargs.items() if k != LIVE_CONTEXT}
    kwargs[LIVE_CONTEXT_REF] = field
    return message.model_copy(update={"additional_kwargs": kwargs})
