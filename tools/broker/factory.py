"""Choose the broker and alert service from settings: the platform's trading service, or the paper ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.broker.alerts import RedisAlerts
from tools.broker.http import HttpAlerts
from tools.broker.observed import ObservedHttpBroker
from tools.broker.paper import PaperBroker
from tools.protocols import AlertService, Broker, Clock, MarketData
from tools.schemas import SymbolSpec

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from config import Settings


def build_broker(
    settings: Settings,
    redis: aioredis.Redis,
    market: MarketData,
    clock: Clock,
    specs: dict[str, SymbolSpec],
) -> tuple[Broker, AlertService]:
    url = settings.services.trading_url
    if url:
        timeout, retries = settings.tools.timeout, settings.tools.retry_count
        broker = ObservedHttpBroker(url, timeout, retries, redis=redis, clock=clock, settings=settings)
        return broker, HttpAlerts(url, timeout, retries)
    return PaperBroker(redis, market, clock, specs, settings), RedisAlerts(redis, market, clock, settings)
