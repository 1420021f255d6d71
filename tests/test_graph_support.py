"""Shared fixtures for the graph tests: real Redis, real services on the shared XAUUSD data, a manual clock.

No tests here; the graph test modules import these fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from config import Settings, load_settings
from graph.audit import AuditTrail
from graph.copilot import Copilot
from graph.fake_model import ScriptedChatModel
from tools.broker.factory import build_broker
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.factory import data_files
from tools.market.specs import load_specs
from tools.services import Services
from tools.signals.factory import build_signals

# Times on the real XAUUSD history where the technical engine (5m) says, as checked when writing the tests:
GOOD = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # LONG, confidence 0.75, AMD markup
MANIPULATION = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # AMD manipulation
LOW_CONFIDENCE = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # confidence 0.5, AMD distribution
USER, SESSION = "alice", "s1"


class WallClock:
    """The wall clock proposals expire by; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.value = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


CopilotFactory = Callable[..., AbstractAsyncContextManager[Copilot]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(GOOD)


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


_MARKETS: dict[str, CsvMarketData] = {}


def shared_market(settings: Settings, clock: ManualClock) -> CsvMarketData:
    """The CSV history loads once per test session (2-3 s); each test gets it on its own clock."""
    files = data_files(settings)
    source = ",".join(map(str, files))
    if source not in _MARKETS:
        market = CsvMarketData(load_specs(settings), clock)
        market.load_files(files)
        _MARKETS[source] = market
    market = _MARKETS[source]
    market.clock = clock
    return market


@pytest.fixture
async def services(
    settings: Settings, redis_client: aioredis.Redis, clock: ManualClock
) -> AsyncIterator[Services]:
    """build_services' wiring (CSV market, technical engine, paper broker) over the shared loaded history."""
    specs = load_specs(settings)
    market = shared_market(settings, clock)
    signals = build_signals(settings, market, clock, specs)
    broker, alerts = build_broker(settings, redis_client, market, clock, specs)
    closers: list[object] = [s for s in (signals, broker, alerts) if hasattr(s, "aclose")]
    built = Services(settings, redis_client, specs, clock, market, signals, broker, alerts, closers)
    yield built
    await built.aclose()


@pytest.fixture
def make_copilot(settings: Settings, services: Services, wall: WallClock) -> CopilotFactory:
    """Open a Copilot over the test services with a scripted model; `risk=` overrides risk settings."""

    @asynccontextmanager
    async def factory(replies: list[Any] | None = None, **overrides: Any) -> AsyncIterator[Copilot]:
        tuned = settings
        if overrides:
            data = settings.model_dump()
            for section, values in overrides.items():
                data[section] = {**data[section], **values}
            tuned = load_settings(**data)
            services.settings = tuned
        model = ScriptedChatModel(replies=replies or ["ok"])
        async with Copilot.open(tuned, services=services, chat_model=model, now=wall) as copilot:
            yield copilot

    return factory


def audit_of(services: Services) -> AuditTrail:
    return AuditTrail(services.redis, services.settings.redis.prefix)


async def positions(services: Services, account: str = "paper-alice") -> list[Any]:
    return list((await services.broker.get_portfolio(account)).positions)


async def buy_levels(
    services: Services, stop_usd: float = 5.0, reward_ratio: float = 2.0
) -> dict[str, float]:
    """A BUY's SL/TP around the current ask: `stop_usd` below, `reward_ratio` times that above."""
    quote = await services.market.get_quote("XAUUSD")
    return {
        "stop_loss": round(quote.ask - stop_usd, 2),
        "take_profit": round(quote.ask + stop_usd * reward_ratio, 2),
    }
