"""The Redis checkpointer: AsyncRedisSaver on the configured Redis, keys under the project prefix, TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, TypedDict

import redis.asyncio as aioredis
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer

from config import Settings

# Chat turns use "exit": one checkpoint per run, written before ainvoke/astream return (so a pending
# approval is on Redis before the API answers). bench/bench_checkpoint.py, 100 turns of
# model -> tool -> model: exit ~24 ms/turn and ~1 Redis key per turn; sync/async ~44 ms and ~30 keys per
# turn. A crash mid-turn only loses that turn's message, which the trader sends again.
# Decisions (resume -> execute -> reason) use "sync": every step is durable before the next starts, so
# once the order is sent its outcome is checkpointed before the model narrates it. Even if a crash hit
# in between, re-approving replays the same idempotency key and the broker places nothing new.
DURABILITY_CHAT: Literal["sync", "async", "exit"] = "exit"
DURABILITY_DECISION: Literal["sync", "async", "exit"] = "sync"


class CachedConstructorSerializer(JsonPlusRedisSerializer):
    """The saver's serializer, remembering the class each stored constructor names. As shipped it imports the
    named module for every message it revives, and for messages stored under the legacy path
    (`langchain.schema.messages`, a package not installed here) that is a failed search of the whole sys.path
    each time: measured 4.6 ms to revive 40 messages, 1.7 ms with this cache (bench_stack's profile)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[tuple[str, ...], type[Any] | str] = {}

    def _constructor_class(self, obj: dict[str, Any]) -> type[Any]:
        id_parts = obj.get("id")
        if not isinstance(id_parts, list) or not all(isinstance(p, str) for p in id_parts):
            return super()._constructor_class(obj)
        key = tuple(id_parts)
        if key not in self._classes:
            try:
                self._classes[key] = super()._constructor_class(obj)
            except ValueError as exc:
                self._classes[key] = str(exc)
        found = self._classes[key]
        if isinstance(found, str):
            raise ValueError(found)  # as the parent does, so its fallback to langchain_core's reviver runs
        return found


class TtlConfig(TypedDict):
    """AsyncRedisSaver's `ttl` option: minutes a checkpoint lives, and whether reading it renews that."""

    default_ttl: float
    refresh_on_read: bool


def ttl_config(settings: Settings) -> TtlConfig | None:
    """The saver counts TTL in minutes; settings.redis.ttl is seconds (0 = keep forever)."""
    if settings.redis.ttl <= 0:
        return None
    return TtlConfig(default_ttl=max(settings.redis.ttl / 60, 1 / 60), refresh_on_read=True)


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[AsyncRedisSaver]:
    """An AsyncRedisSaver with its own connection, indexes created, closed on exit."""
    prefix = settings.redis.prefix
    # Our own client (bytes, as the saver expects): the saver's URL factory is deprecated.
    client = aioredis.from_url(settings.effective_redis_url)
    ttl = ttl_config(settings)
    saver = AsyncRedisSaver(
        redis_client=client,
        ttl=None if ttl is None else dict(ttl),
        checkpoint_prefix=f"{prefix}checkpoint",
        checkpoint_write_prefix=f"{prefix}checkpoint_write",
    )
    saver.serde = CachedConstructorSerializer()
    try:
        async with saver:
            yield saver
    finally:
        await client.aclose()
