"""The service container the tools and the graph use, built once from settings (embedded or HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tools.protocols import AlertService, Broker, Clock, MarketData, SignalSource
from tools.schemas import SymbolSpec

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from fastapi import FastAPI

    from config import Settings


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    specs: dict[str, SymbolSpec]
    clock: Clock
    market: MarketData
    signals: SignalSource
    broker: Broker
    alerts: AlertService
    closers: list[object] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in self.closers:
            await closer.aclose()  # type: ignore[attr-defined]


async def build_services(
    settings: Settings, redis: aioredis.Redis, clock: Clock | None = None, *, clock_owner: bool = False
) -> Services:
    """Wire the services from settings: embedded ones unless a platform URL is configured for them.

    clock_owner: this process (the server) anchors the shared replay clock; others only read it."""
    from tools.broker.factory import build_broker
    from tools.key_migration import migrate_keys
    from tools.market.factory import build_market
    from tools.market.specs import load_specs
    from tools.signals.factory import build_signals

    # Before anything reads Redis: the keys of earlier versions (ledger, notices, notes, clock) renamed.
    await migrate_keys(redis, settings.redis.prefix)
    specs = load_specs(settings)
    market, clock = await build_market(settings, redis, clock, clock_owner=clock_owner)
    signals = build_signals(settings, market, clock, specs)
    broker, alerts = build_broker(settings, redis, market, clock, specs)
    closers: list[object] = [s for s in (market, signals, broker, alerts) if hasattr(s, "aclose")]
    return Services(settings, redis, specs, clock, market, signals, broker, alerts, closers)


def platform_app(services: Services) -> FastAPI:
    """The platform's HTTP contracts (data, ML engine, trading service) served from the embedded services.

    Used by the contract tests of the HTTP clients, and runnable as a stand-in platform for integration work.
    """
    from fastapi import FastAPI

    from tools.broker.api import router as trading_router
    from tools.market.api import router as data_router
    from tools.signals.api import router as signal_router

    app = FastAPI(title="Trading platform services (embedded)")
    app.include_router(data_router(services.market))
    app.include_router(signal_router(services.signals))
    app.include_router(trading_router(services.broker, services.alerts))
    return app
