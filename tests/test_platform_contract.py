"""platform_app's HTTP contracts against the HTTP clients build_services wires when the platform URLs are set.

The platform side is the embedded wiring (CSV market, technical engine, paper broker) served under real
uvicorn; the copilot side is a second Services whose data, ML engine and trading URLs all point at it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from config import Settings, load_settings
from tests.support.graph import shared_market
from tests.support.serving import serve_app
from tools.broker.factory import build_broker
from tools.broker.http import HttpAlerts, HttpBroker
from tools.market.clock import ManualClock
from tools.market.http import HttpMarketData
from tools.market.specs import load_specs
from tools.protocols import ServiceError, UnknownSymbolError
from tools.schemas import AlertRequest, OrderRequest
from tools.services import Services, build_services, platform_app
from tools.signals.factory import build_signals
from tools.signals.http import HttpSignalSource


def platform_server_app(settings: Settings, redis_url: str, market_clock: ManualClock) -> FastAPI:
    """platform_app over embedded services; their Redis client lives (and closes) on the server's loop."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    specs = load_specs(settings)
    market = shared_market(settings, market_clock)
    signals = build_signals(settings, market, market_clock, specs)
    broker, alerts = build_broker(settings, client, market, market_clock, specs)
    app = platform_app(Services(settings, client, specs, market_clock, market, signals, broker, alerts))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app.router.lifespan_context = lifespan
    return app


@pytest.fixture
def platform_url(
    settings: Settings,
    redis_url: str,
    clock: ManualClock,
    services: Services,
) -> Iterator[str]:
    # `services` first: it points the shared CSV market at this test's clock before the server uses it.
    with serve_app(platform_server_app(settings, redis_url, clock)) as url:
        yield url


@pytest.fixture
async def remote(
    settings: Settings,
    redis_client: aioredis.Redis,
    clock: ManualClock,
    platform_url: str,
) -> AsyncIterator[Services]:
    """What the copilot builds when every platform service is configured by URL."""
    urls = {"data_url": platform_url, "ml_engine_url": platform_url, "trading_url": platform_url}
    http_settings = load_settings(**{**settings.model_dump(), "services": urls, "tools": {"retry_count": 0}})
    built = await build_services(http_settings, redis_client, clock)
    yield built
    await built.aclose()


async def test_build_services_wires_the_http_clients(remote: Services, clock: ManualClock) -> None:
    assert isinstance(remote.market, HttpMarketData)
    assert isinstance(remote.signals, HttpSignalSource)
    assert isinstance(remote.broker, HttpBroker) and isinstance(remote.alerts, HttpAlerts)
    assert remote.clock is clock  # the clock given wins over the SystemClock default
    assert len(remote.closers) == 4  # every HTTP client is closed with the services


async def test_same_bars_and_signal_as_in_process(remote: Services, services: Services) -> None:
    for timeframe in ("1m", "5m", "1h"):
        local_bars = await services.market.get_bars("XAUUSD", timeframe, 50)
        assert len(local_bars) == 50
        assert await remote.market.get_bars("xauusd", timeframe, 50) == local_bars
    local_signal = await services.signals.get_signal("XAUUSD", "5m")
    assert await remote.signals.get_signal("XAUUSD", "5m") == local_signal
    assert local_signal.action == "LONG"  # GOOD is a LONG on the history (tests/support/graph.py)
    local_analysis = await services.signals.analyze("XAUUSD")
    assert await remote.signals.analyze("XAUUSD") == local_analysis


async def test_same_order_key_twice_places_one_position(remote: Services, services: Services) -> None:
    quote = await services.market.get_quote("XAUUSD")
    order = OrderRequest(
        symbol="XAUUSD", action="BUY", size=0.1, stop_loss=round(quote.ask - 5, 2), take_profit=None
    )
    first = await remote.broker.place_order(order, "contract-key-1")
    again = await remote.broker.place_order(order, "contract-key-1")
    assert first.success and first.ticket is not None and not first.duplicate
    assert again.duplicate and again.ticket == first.ticket
    embedded = (await services.broker.get_portfolio()).positions
    assert [p.ticket for p in embedded] == [first.ticket]
    assert [p.ticket for p in (await remote.broker.get_portfolio()).positions] == [first.ticket]
    other = await remote.broker.place_order(order, "contract-key-2")
    assert other.success and other.ticket != first.ticket
    assert len((await services.broker.get_portfolio()).positions) == 2


async def test_alerts_round_trip(remote: Services, services: Services) -> None:
    quote = await services.market.get_quote("XAUUSD")
    request = AlertRequest(
        symbol="XAUUSD", condition="above", price=round(quote.bid + 10, 2), message="ceiling"
    )
    created = await remote.alerts.set_alert(request)
    assert (created.symbol, created.condition, created.price, created.message) == (
        "XAUUSD",
        "above",
        request.price,
        "ceiling",
    )
    assert created.status == "active"
    assert await remote.alerts.list_alerts() == [created]
    assert await services.alerts.list_alerts() == [created]  # stored where the embedded service keeps them


async def test_unknown_symbol_is_a_clear_service_error(remote: Services) -> None:
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol 'BTCUSD'; known: .*XAUUSD"):
        await remote.market.get_bars("BTCUSD", "5m", 10)
    with pytest.raises(ServiceError, match=r"ML engine: Unknown symbol 'BTCUSD'.*XAUUSD.*\(404\)"):
        await remote.signals.get_signal("BTCUSD", "5m")
    order = OrderRequest(symbol="BTCUSD", action="BUY", size=0.1, stop_loss=1.0)
    with pytest.raises(ServiceError, match=r"trading service: unknown symbol 'BTCUSD'.*\(404\)"):
        await remote.broker.place_order(order, "contract-key-unknown")
    with pytest.raises(ServiceError, match=r"trading service: .*BTCUSD"):
        await remote.alerts.set_alert(AlertRequest(symbol="BTCUSD", condition="below", price=1.0))
