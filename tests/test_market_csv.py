"""CsvMarketData over the real shared history: loading, resampling vs an independent computation, gaps,
no look-ahead, quotes, bars_since and errors."""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import load_settings
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs, spec_for
from tools.protocols import ServiceError, UnknownSymbolError

Row = tuple[datetime, float, float, float, float, float]


@pytest.fixture(scope="session")
def loaded(shared_data: Path) -> CsvMarketData:
    """Both shared files, loaded once per session (the 300k-row gold file takes ~2 s)."""
    market = CsvMarketData(load_specs(load_settings()), ManualClock(datetime(2000, 1, 1, tzinfo=UTC)))
    assert market.load_dir(shared_data) == ["EURUSD", "XAUUSD"]
    return market


@pytest.fixture(scope="session")
def raw_rows(shared_data: Path) -> list[Row]:
    """Gold rows around the 2026-02-27 weekend, read with the csv module independently of the store."""
    rows: list[Row] = []
    with gzip.open(shared_data / "XAUUSD_M1.csv.gz", "rt") as handle:
        for line in handle:
            if line.startswith(("2026-02-26", "2026-02-27", "2026-03-01", "2026-03-02")):
                f = next(csv.reader([line]))
                stamp = datetime.strptime(f[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                rows.append((stamp, *(float(x) for x in f[1:6])))  # type: ignore[arg-type]
    return rows


def at(loaded: CsvMarketData, when: datetime) -> CsvMarketData:
    return loaded.with_clock(ManualClock(when))


def test_loads_both_files_at_native_timeframes(loaded: CsvMarketData) -> None:
    assert loaded.native_timeframe("XAUUSD") == "1m" and loaded.native_timeframe("eurusd") == "1h"
    assert loaded.bar_count("XAUUSD") == 302_387 and loaded.bar_count("EURUSD") == 5_000
    first, last = loaded.history_range("XAUUSD")
    assert first == datetime(2025, 10, 9, 19, 0, tzinfo=UTC)
    assert last == datetime(2026, 8, 21, 20, 45, tzinfo=UTC)  # last bar 20:44 closes at 20:45


async def test_5m_bars_match_independent_aggregation(loaded: CsvMarketData, raw_rows: list[Row]) -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    bars = await at(loaded, now).get_bars("XAUUSD", "5m", 60)
    groups: dict[datetime, list[Row]] = defaultdict(list)
    for row in raw_rows:
        if row[0] < now:
            groups[row[0].replace(minute=row[0].minute // 5 * 5)].append(row)
    assert len(bars) == 60
    for bar in bars:
        g = groups[bar.time]
        assert (bar.open, bar.close) == (g[0][1], g[-1][4])
        assert bar.high == max(r[2] for r in g) and bar.low == min(r[3] for r in g)
        assert bar.volume == pytest.approx(sum(r[5] for r in g))


async def test_daily_bar_is_utc_midnight_aggregate(loaded: CsvMarketData, raw_rows: list[Row]) -> None:
    bars = await at(loaded, datetime(2026, 3, 3, tzinfo=UTC)).get_bars("XAUUSD", "1d", 3)
    day = [r for r in raw_rows if r[0].date() == datetime(2026, 3, 2).date()]
    last = bars[-1]
    assert last.time == datetime(2026, 3, 2, tzinfo=UTC)
    assert (last.open, last.close) == (day[0][1], day[-1][4])
    assert (last.high, last.low) == (max(r[2] for r in day), min(r[3] for r in day))
    # Saturday 2026-02-28 has no trading: no synthetic bar for it.
    assert [b.time.day for b in bars] == [27, 1, 2]


async def test_weekend_gap_produces_no_synthetic_hourly_bars(loaded: CsvMarketData) -> None:
    bars = await at(loaded, datetime(2026, 3, 2, 2, 0, tzinfo=UTC)).get_bars("XAUUSD", "1h", 6)
    times = [b.time for b in bars]
    assert datetime(2026, 2, 27, 21, 0, tzinfo=UTC) in times
    assert datetime(2026, 3, 1, 23, 0, tzinfo=UTC) in times
    assert not any(t.weekday() == 5 for t in times)
    gap = times.index(datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    assert times[gap] - times[gap - 1] > timedelta(days=1)


async def test_no_look_ahead(loaded: CsvMarketData, raw_rows: list[Row]) -> None:
    by_time = {r[0]: r for r in raw_rows}
    noon = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    before = await at(loaded, noon - timedelta(seconds=1)).get_bars("XAUUSD", "1m", 1)
    assert before[-1].time == noon - timedelta(minutes=2)  # 11:59 closes at 12:00, not yet
    after = await at(loaded, noon + timedelta(minutes=2)).get_bars("XAUUSD", "5m", 1)
    # The 12:00 five-minute bar is still forming: built from 12:00 and 12:01 only.
    assert after[-1].time == noon
    assert after[-1].close == by_time[noon + timedelta(minutes=1)][4]
    assert after[-1].high == max(by_time[noon][2], by_time[noon + timedelta(minutes=1)][2])


async def test_quote_is_last_close_plus_spread(loaded: CsvMarketData, raw_rows: list[Row]) -> None:
    noon = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
    quote = await at(loaded, noon).get_quote("xauusd")
    last = next(r for r in raw_rows if r[0] == datetime(2026, 3, 2, 11, 59, tzinfo=UTC))
    assert quote.bid == last[4]
    assert quote.ask == round(last[4] + 2.0 * 0.1, 2)  # XAUUSD: 2 pips of 0.10
    assert quote.time == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def test_stale_symbol_has_no_quote(loaded: CsvMarketData) -> None:
    with pytest.raises(ServiceError, match="no recent price"):
        await at(loaded, datetime(2026, 3, 2, tzinfo=UTC)).get_quote("EURUSD")


async def test_bars_since_includes_the_bar_forming_at_since(loaded: CsvMarketData) -> None:
    market = at(loaded, datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC))
    bars = await market.bars_since("XAUUSD", datetime(2026, 3, 2, 11, 50, 30, tzinfo=UTC))
    assert [b.time.minute for b in bars] == list(range(50, 60))


async def test_eurusd_resamples_to_4h_but_not_finer(loaded: CsvMarketData) -> None:
    market = at(loaded, datetime(2018, 1, 10, tzinfo=UTC))
    bars = await market.get_bars("EURUSD", "4h", 10)
    assert len(bars) == 10 and all(b.time.hour % 4 == 0 and b.time.minute == 0 for b in bars)
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    with pytest.raises(ServiceError, match="cannot give 5m"):
        await market.get_bars("EURUSD", "5m", 10)


async def test_errors_for_unknown_symbol_and_empty_history(loaded: CsvMarketData) -> None:
    with pytest.raises(
        UnknownSymbolError, match="unknown symbol 'XAUUSDX'; known: EURUSD, GBPUSD, USDJPY, XAUUSD"
    ):
        await at(loaded, datetime(2026, 3, 2, tzinfo=UTC)).get_bars("XAUUSDX")
    with pytest.raises(ServiceError, match="no XAUUSD data yet"):
        await at(loaded, datetime(2024, 1, 1, tzinfo=UTC)).get_quote("XAUUSD")
    with pytest.raises(ServiceError, match="no market data loaded for GBPUSD"):
        await at(loaded, datetime(2026, 3, 2, tzinfo=UTC)).get_bars("GBPUSD")
    specs = load_specs(load_settings())
    assert spec_for(specs, " usdjpy ").quote_currency == "JPY"
