"""`copilot telegram`: the bot in a process of its own (its own Copilot on the deployment's Redis)."""

from __future__ import annotations

import redis.asyncio as aioredis

from config import Settings
from graph.copilot import Copilot
from server.telegram import run_telegram
from tools.locks import Leases


async def run_standalone(settings: Settings) -> None:
    redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
    try:
        async with Copilot.open(settings) as copilot:
            locks = Leases(
                redis,
                settings.redis.prefix,
                settings.server.run_lease_seconds,
                wait_seconds=settings.server.busy_wait_seconds,
            )
            await run_telegram(copilot, settings, redis, locks)
    finally:
        await redis.aclose()
