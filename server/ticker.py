"""Background ticker: as the replay clock advances, SL/TP and price alerts fire even on untouched accounts."""

from __future__ import annotations

import asyncio
import logging

from tools.market.clock import clock_heartbeat
from tools.services import Services

log = logging.getLogger("copilot.ticker")


async def tick(services: Services) -> tuple[int, int]:
    """One pass over every account; returns (positions closed, alerts triggered). Safe from N workers at once:
    the paper ledger and the alert book apply each change in one Redis transaction."""
    closed = fired = 0
    # Embedded paper broker and alert book only; a live trading service does this itself.
    sync = getattr(services.broker, "sync", None)
    if sync is not None:
        for trade in await sync(None):
            closed += 1
            log.info("position closed by the market: %s", trade)
    check = getattr(services.alerts, "check", None)
    if check is not None:
        for alert in await check(None):
            fired += 1
            log.info(
                "alert %s triggered: %s %s %s at %s",
                alert.alert_id,
                alert.symbol,
                alert.condition,
                alert.price,
                alert.triggered_price,
            )
    return closed, fired


async def run_ticker(services: Services, every_seconds: float) -> None:
    """Each pass also renews this server's claim on the shared replay clock (when it replays history)."""
    replaying = not services.settings.services.data_url
    while True:
        try:
            if replaying:
                await clock_heartbeat(services.redis, services.settings)
            await tick(services)
        except Exception:  # a failed pass must not stop the next one
            log.exception("ticker pass failed")
        await asyncio.sleep(every_seconds)
