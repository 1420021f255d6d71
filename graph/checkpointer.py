"""The Redis checkpointer: AsyncRedisSaver on the configured Redis, keys under the project prefix, TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from langgraph.checkpoint.redis.aio import AsyncRedisSaver

from config import Settings

# "sync": every step's checkpoint is written before the next step starts, so an interrupt (a pending
# approval) is on Redis before the API answers, and an executed order is recorded before the model
# narrates it. Measured in bench/bench_checkpoint.py: the extra writes cost ~ms per step, negligible
# next to a model call.
DURABILITY: Literal["sync", "async", "exit"] = "sync"


def ttl_config(settings: Settings) -> dict[str, Any] | None:
    """The saver counts TTL in minutes; settings.redis.ttl is seconds (0 = keep forever)."""
    if settings.redis.ttl <= 0:
        return None
    return {"default_ttl": max(settings.redis.ttl / 60, 1 / 60), "refresh_on_read": True}


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[AsyncRedisSaver]:
    """An AsyncRedisSaver with its own connection, indexes created, closed on exit."""
    prefix = settings.redis.prefix
    saver = AsyncRedisSaver(
        redis_url=settings.effective_redis_url,
        ttl=ttl_config(settings),
        checkpoint_prefix=f"{prefix}checkpoint",
        checkpoint_write_prefix=f"{prefix}checkpoint_write",
    )
    async with saver:
        yield saver
