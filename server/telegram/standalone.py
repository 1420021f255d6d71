"""`copilot telegram`: the bot in a process of its own (its own Copilot on the deployment's Redis)."""

from __future__ import annotations

from config import Settings
from graph.copilot import Copilot
from server.telegram import run_telegram
from tools.locks import Leases


async def run_standalone(settings: Settings) -> None:
    async with Copilot.open(settings) as copilot:
        redis = copilot.services.redis  # the copilot's own client (tools.redis_clients: Sentinel too)
        locks = Leases(
            redis,
            settings.redis.prefix,
            settings.server.run_lease_seconds,
            wait_seconds=settings.server.busy_wait_seconds,
        )
        await run_telegram(copilot, settings, redis, locks)
