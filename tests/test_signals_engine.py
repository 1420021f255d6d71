"""TechnicalEngine on the real shared history (XAUUSD M1, EURUSD H1) via CsvMarketData and a ManualClock."""

from __future__ import annotations

import csv
import gzip
import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config import load_settings
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs
from tools.protocols import UnknownSymbolError
from tools.schemas import Signal, SymbolSpec
from tools.signals.technical import TechnicalEngine

COMPONENT = re.compile(r"\(([+-]\d+\.\d+)\)$")
# Weekday moments spread over the gold history, at varied hours (all well inside trading sessions).
SAMPLE_TIMES = [
    datetime(2025, 11, 3, 9, 17, tzinfo=UTC) + timedelta(days=7 * week + day, hours=3 * day)
    for week in range(0, 40)
    for day in range(4)
]


@pytest.fixture(scope="module")
def specs() -> dict[str, SymbolSpec]:
    return load_specs(load_settings())


@pytest.fixture(scope="module")
def world(shared_data: Path, specs: dict[str, SymbolSpec]) -> tuple[ManualClock, TechnicalEngine]:
    clock = ManualClock(SAMPLE_TIMES[0])
    market = CsvMarketData(specs, clock)
    market.load_file(shared_data / "XAUUSD_M1.csv.gz")
    market.load_file(shared_data / "EURUSD_H1.csv.gz")
    return clock, TechnicalEngine(market, clock, specs)


def component_sum(signal: Signal) -> float:
    total = sum(float(m.group(1)) for line in signal.reasoning if (m := COMPONENT.search(line)))
    return round(min(1.0, max(0.0, total)), 2)


def check_levels(signal: Signal, spec: SymbolSpec) -> None:
    assert signal.entry_price is not None and signal.stop_loss is not None and signal.take_profit is not None
    for price in (signal.entry_price, signal.stop_loss, signal.take_profit):
        assert price == round(price, spec.digits)
    if signal.action == "LONG":
        assert signal.stop_loss < signal.entry_price < signal.take_profit
    else:
        assert signal.take_profit < signal.entry_price < signal.stop_loss
    risk = abs(signal.entry_price - signal.stop_loss)
    reward = abs(signal.take_profit - signal.entry_price)
    assert signal.risk_reward == pytest.approx(reward / risk, abs=0.01)
    assert signal.risk_reward is not None and signal.risk_reward >= 1.98  # 2.0 up to price rounding


async def test_signals_across_the_gold_history_are_internally_consistent(
    world: tuple[ManualClock, TechnicalEngine], specs: dict[str, SymbolSpec]
) -> None:
    clock, engine = world
    actions: Counter[str] = Counter()
    for moment in SAMPLE_TIMES:
        clock.set(moment)
        signal = await engine.get_signal("XAUUSD")
        quote = await engine.market.get_quote("XAUUSD")
        actions[signal.action] += 1
        assert signal.source == "technical_engine" and "not the ML engine" in signal.reasoning[0]
        assert 0.0 <= signal.confidence <= 1.0
        assert signal.confidence == component_sum(signal), signal.reasoning
        assert signal.generated_at == moment
        assert signal.reasoning[-1].startswith(f"Decision: {signal.action}")
        if signal.action == "HOLD":
            assert signal.entry_price is None
            continue
        assert signal.confidence >= 0.60
        assert signal.amd_phase != "manipulation"
        check_levels(signal, specs["XAUUSD"])
        assert signal.entry_price == (quote.ask if signal.action == "LONG" else quote.bid)
    # real gold over ten months both rallied and sold off: the rules must produce both sides and restraint
    assert actions["LONG"] > 0 and actions["SHORT"] > 0 and actions["HOLD"] > 0, actions


async def test_no_look_ahead_against_an_engine_whose_data_ends_at_t(
    world: tuple[ManualClock, TechnicalEngine],
    specs: dict[str, SymbolSpec],
    shared_data: Path,
    tmp_path: Path,
) -> None:
    clock, engine = world
    t = datetime(2026, 2, 11, 14, 37, 30, tzinfo=UTC)  # mid-minute: the 14:37 bar is still forming
    truncated = tmp_path / "XAUUSD_M1.csv.gz"
    kept = _copy_rows_closed_by(shared_data / "XAUUSD_M1.csv.gz", truncated, t - timedelta(days=25), t)
    assert kept > 10_000
    short_clock = ManualClock(t)
    short_market = CsvMarketData(specs, short_clock)
    short_market.load_file(truncated)
    short_engine = TechnicalEngine(short_market, short_clock, specs)
    clock.set(t)
    assert await engine.get_signal("XAUUSD") == await short_engine.get_signal("XAUUSD")
    assert await engine.get_signal("XAUUSD", "15m") == await short_engine.get_signal("XAUUSD", "15m")
    assert await engine.analyze("XAUUSD") == await short_engine.analyze("XAUUSD")


def _copy_rows_closed_by(source: Path, target: Path, since: datetime, t: datetime) -> int:
    """Copy the M1 rows whose bar closed by `t` (open + 1 min <= t) and opened after `since`."""
    last_open = (t - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    first_open = since.strftime("%Y-%m-%d %H:%M:%S")
    kept = 0
    with gzip.open(source, "rt", newline="") as src, gzip.open(target, "wt", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for row in reader:
            if row[0] > last_open:  # ISO timestamps sort as text
                break
            if row[0] >= first_open:
                writer.writerow(row)
                kept += 1
    return kept


@pytest.mark.parametrize(
    ("moment", "killzone"),
    [
        (datetime(2026, 2, 10, 7, 30, tzinfo=UTC), "london_open"),  # 02:30 EST
        (datetime(2026, 3, 10, 13, 45, tzinfo=UTC), "ny_am"),  # 09:45 EDT (DST started March 8)
        (datetime(2026, 3, 10, 15, 5, tzinfo=UTC), "none"),  # 11:05 EDT
        (datetime(2026, 7, 14, 6, 15, tzinfo=UTC), "london_open"),  # 02:15 EDT
    ],
)
async def test_killzone_follows_the_clock_in_new_york_time(
    world: tuple[ManualClock, TechnicalEngine], moment: datetime, killzone: str
) -> None:
    clock, engine = world
    clock.set(moment)
    signal = await engine.get_signal("XAUUSD")
    assert signal.killzone == killzone
    assert (await engine.analyze("XAUUSD")).ict_context.killzone == killzone
    kz_line = next(line for line in signal.reasoning if line.startswith("Killzone"))
    assert kz_line.endswith("(+0.10)" if killzone != "none" else "(+0.00)")


async def test_analysis_levels_bracket_the_price(world: tuple[ManualClock, TechnicalEngine]) -> None:
    clock, engine = world
    clock.set(datetime(2026, 5, 6, 16, 0, tzinfo=UTC))
    analysis = await engine.analyze("xauusd")
    quote = await engine.market.get_quote("XAUUSD")
    assert quote.bid <= analysis.current_price <= quote.ask
    resistance, support = analysis.key_levels.resistance, analysis.key_levels.support
    assert len(resistance) in (1, 2, 3) and len(support) in (1, 2, 3)
    assert all(level > analysis.current_price for level in resistance) and resistance == sorted(resistance)
    assert all(level < analysis.current_price for level in support) and support == sorted(
        support, reverse=True
    )
    gaps = [b - a for a, b in itertools.pairwise(resistance)]
    gaps += [a - b for a, b in itertools.pairwise(support)]
    assert all(gap >= 0.0005 * analysis.current_price for gap in gaps)  # near-duplicate swings merged
    recent = analysis.recent_signals
    assert recent[0] == await engine.get_signal("XAUUSD")
    stamps = [s.generated_at for s in recent if s.generated_at is not None]
    assert len(recent) == 3 and len(set(stamps)) == 3 and stamps == sorted(stamps, reverse=True)
    assert stamps[0] == clock.now()
    assert analysis.ict_context.score == recent[0].confidence
    assert analysis.volatility in {"low", "medium", "high"} and analysis.trend in {
        "bullish",
        "bearish",
        "ranging",
    }


async def test_eurusd_hourly_data_falls_back_to_1h_and_says_so(
    world: tuple[ManualClock, TechnicalEngine], specs: dict[str, SymbolSpec]
) -> None:
    clock, engine = world
    actions: set[str] = set()
    for day in range(0, 60, 3):
        clock.set(datetime(2017, 9, 4, 13, 0, tzinfo=UTC) + timedelta(days=day))
        signal = await engine.get_signal("EURUSD")
        assert signal.timeframe == "1h"
        assert "Timeframe: 5m is not available for EURUSD; used 1h" in signal.reasoning
        actions.add(signal.action)
        if signal.action != "HOLD":
            check_levels(signal, specs["EURUSD"])
    assert (
        await engine.get_signal("EURUSD", "4h")
    ).timeframe == "4h"  # coarser than the data: served as asked
    assert actions - {"HOLD"}, "two months of hourly EURUSD without a single trade signal"


async def test_unknown_symbol(world: tuple[ManualClock, TechnicalEngine]) -> None:
    _, engine = world
    with pytest.raises(UnknownSymbolError, match="XAUUSD"):  # the message lists what is covered
        await engine.get_signal("DOGEUSD")
    with pytest.raises(UnknownSymbolError):
        await engine.analyze("GBPUSD")  # configured, but no data loaded: not covered
