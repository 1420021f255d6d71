"""Background ticker: as the replay clock advances, SL/TP and price alerts fire even on untouched accounts."""

from __future__ import annotations

import asyncio
import logging

from tools.leader import Leader
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


async def run_ticker(services: Services, every_seconds: float, leader: Leader | None = None) -> None:
    """Each pass also renews this server's claim on the shared replay clock (when it replays history). With
    `leader`, only the worker holding the deployment's ticker lease scans the accounts (one ticker per
    deployment); every worker still renews the clock's heartbeat (one SET per pass), so a standby taking the
    lease over finds the clock claimed."""
    if leader is None:
        await _passes(services, every_seconds, beat=True, scan=True)
        return
    heartbeat = asyncio.create_task(_passes(services, every_seconds, beat=True, scan=False))
    try:
        await leader.run(lambda: _passes(services, every_seconds, beat=False, scan=True))
    finally:
        heartbeat.cancel()


async def _passes(services: Services, every_seconds: float, beat: bool, scan: bool) -> None:
    beat = beat and not services.settings.services.data_url  # only a replayed history has a clock
    while True:
        try:
            if beat:
                await clock_heartbeat(services.redis, services.settings)
            if scan:
                await tick(services)
        except Exception:  # a failed pass must not stop the next one
            log.exception("ticker pass failed")
        await asyncio.sleep(every_seconds)
