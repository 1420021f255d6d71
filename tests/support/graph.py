"""Helpers of the graph tests (their fixtures live in tests/conftest.py): market moments of the shared
XAUUSD history, the wall clock proposals expire by, the loaded history shared across tests, audit and
portfolio look-ups, levels around the current price."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from config import Settings
from graph.audit import AuditTrail
from graph.copilot import Copilot
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.factory import data_files
from tools.market.specs import load_specs
from tools.services import Services

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
