"""Shared setup for the broker and alert tests: the real XAUUSD history loaded once, a movable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from config import load_settings
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs
from tools.schemas import Bar, SymbolSpec

# A Monday morning in the real history (London session): quotes exist and the market keeps moving.
T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)

# What the `market_world` fixture (tests/conftest.py) gives: the clock, the market and the symbol specs.
World = tuple[ManualClock, CsvMarketData, dict[str, SymbolSpec]]


@lru_cache(maxsize=1)
def _loaded(data_dir: str) -> World:
    specs = load_specs(load_settings())
    clock = ManualClock(T0)
    market = CsvMarketData(specs, clock)
    market.load_file(Path(data_dir) / "XAUUSD_M1.csv.gz")  # ~2 s: loaded once for all broker tests
    return clock, market, specs


def world(shared_data: Path) -> World:
    """The shared market with its clock put back at T0 (tests run one at a time)."""
    clock, market, specs = _loaded(str(shared_data))
    clock.set(T0)
    return clock, market, specs


async def bars_between(market: CsvMarketData, clock: ManualClock, start: datetime, hours: int) -> list[Bar]:
    """The raw M1 bars opened from `start` over the next `hours` (read with the clock moved ahead)."""
    saved = clock.now()
    clock.set(start + timedelta(hours=hours))
    try:
        return [b for b in await market.bars_since("XAUUSD", start) if b.time >= start]
    finally:
        clock.set(saved)
