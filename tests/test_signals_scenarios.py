"""Engine rules on small bar series built in memory (a sweep, a breakout, an uptrend pullback, thin data).

`MemoryMarket` is a complete in-memory MarketData (bars opened at or before the clock's now, bid = last
close, ask = bid + spread), not a mock of the engine: the engine under test runs unchanged on top of it.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from tools.market.clock import ManualClock
from tools.protocols import ServiceError, UnknownSymbolError
from tools.schemas import Bar, Quote, SymbolSpec
from tools.signals.technical import TechnicalEngine

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday; 00:00 UTC = 19:00 EST, outside the killzones
SPEC = SymbolSpec(
    symbol="TEST", digits=2, pip_size=0.1, contract_size=100, min_lot=0.01, max_lot=10, lot_step=0.01
)
COMPONENT = re.compile(r"\(([+-]\d+\.\d+)\)$")


class MemoryMarket:
    def __init__(self, series: dict[tuple[str, str], list[Bar]], clock: ManualClock, spread: float) -> None:
        self.series, self.clock, self.spread = series, clock, spread

    def symbols(self) -> list[str]:
        return sorted({s for s, _ in self.series})

    def _visible(self, symbol: str, timeframe: str) -> list[Bar]:
        if (symbol, timeframe) not in self.series:
            raise ServiceError(f"no {timeframe} data for {symbol}")
        return [b for b in self.series[symbol, timeframe] if b.time <= self.clock.now()]

    async def get_bars(self, symbol: str, timeframe: str = "5m", bars: int = 100) -> list[Bar]:
        return self._visible(symbol, timeframe)[-bars:]

    async def get_quote(self, symbol: str) -> Quote:
        last = self._visible(symbol, "5m")[-1]
        return Quote(
            symbol=symbol, time=self.clock.now(), bid=last.close, ask=round(last.close + self.spread, 2)
        )

    async def bars_since(self, symbol: str, since: datetime) -> list[Bar]:
        return [b for b in self._visible(symbol, "5m") if b.time > since]


def series(closes: list[float], wick: float = 0.3) -> list[Bar]:
    return [
        Bar(time=T0 + timedelta(minutes=5 * i), open=c, high=c + wick, low=c - wick, close=c)
        for i, c in enumerate(closes)
    ]


def engine_for(bars: list[Bar]) -> TechnicalEngine:
    clock = ManualClock(bars[-1].time)
    market = MemoryMarket({("TEST", "5m"): bars}, clock, spread=0.2)
    return TechnicalEngine(market, clock, {"TEST": SPEC})


def ranging(n: int) -> list[float]:
    return [100 + 1.0 * math.sin(i / 3) for i in range(n)]  # oscillates in [99, 101]


def confidence_from(reasoning: list[str]) -> float:
    total = sum(float(m.group(1)) for line in reasoning if (m := COMPONENT.search(line)))
    return round(min(1.0, max(0.0, total)), 2)


async def test_a_sweep_of_the_range_high_that_closes_inside_is_manipulation() -> None:
    bars = series(ranging(200))
    last = bars[-1]
    # one bar trades 2 above the range high (101.3) and closes back inside: a liquidity grab
    bars[-1] = last.model_copy(update={"high": 103.3, "close": 100.5, "open": 100.0})
    signal = await engine_for(bars).get_signal("TEST")
    assert signal.amd_phase == "manipulation"
    assert signal.action == "HOLD"
    assert any("swept the range high" in line for line in signal.reasoning)
    assert any(
        "liquidity grab in progress" in line for line in signal.reasoning if line.startswith("Decision")
    )
    assert signal.confidence == confidence_from(signal.reasoning)


async def test_a_close_beyond_the_range_is_a_breakout_not_a_sweep() -> None:
    bars = series(ranging(200))
    bars[-1] = bars[-1].model_copy(update={"high": 103.3, "close": 103.0})
    signal = await engine_for(bars).get_signal("TEST")
    assert signal.amd_phase != "manipulation"


async def test_an_uptrend_pulling_back_into_discount_gives_a_consistent_long() -> None:
    # a steady rally, then a slow pullback: EMAs stay stacked, RSI stays in the bull range (>= 40) and
    # price drifts into the discount of the 4-hour range: every rule agrees on a long
    closes = [100 + 0.2 * i + 0.8 * math.sin(i / 2) for i in range(260)]
    closes += [closes[-1] - 0.1 * k + 0.8 * math.sin(k / 2) for k in range(1, 30)]
    signal = await engine_for(series(closes)).get_signal("TEST")
    assert signal.reasoning[0].startswith("Built-in technical engine")
    assert "not the ML engine" in signal.reasoning[0]
    assert any(line.startswith("Trend: EMA20 > EMA50 > EMA200") for line in signal.reasoning)
    assert signal.confidence == confidence_from(signal.reasoning)
    assert signal.action == "LONG", signal.reasoning
    assert signal.entry_price == pytest.approx(round(closes[-1] + 0.2, 2))  # the ask
    assert signal.entry_price is not None and signal.stop_loss is not None and signal.take_profit is not None
    assert signal.risk_reward is not None
    assert signal.stop_loss < signal.entry_price < signal.take_profit
    risk, reward = signal.entry_price - signal.stop_loss, signal.take_profit - signal.entry_price
    assert signal.risk_reward == pytest.approx(reward / risk, abs=0.01)
    assert signal.risk_reward >= 2.0 - 0.01


async def test_a_mirrored_downtrend_gives_a_short_with_levels_reversed() -> None:
    closes = [200 - 0.2 * i - 0.8 * math.sin(i / 2) for i in range(260)]
    closes += [closes[-1] + 0.1 * k - 0.8 * math.sin(k / 2) for k in range(1, 30)]
    signal = await engine_for(series(closes)).get_signal("TEST")
    assert signal.action == "SHORT", signal.reasoning
    assert signal.entry_price == pytest.approx(round(closes[-1], 2))  # the bid
    assert signal.entry_price is not None and signal.stop_loss is not None and signal.take_profit is not None
    assert signal.take_profit < signal.entry_price < signal.stop_loss


async def test_flat_prices_hold_for_lack_of_trend_and_stop_distance() -> None:
    signal = await engine_for(series([100.0] * 200, wick=0.0)).get_signal("TEST")
    assert signal.action == "HOLD"
    assert "no EMA trend" in signal.reasoning[-1] and "ATR 0" in signal.reasoning[-1]
    assert signal.entry_price is None and signal.stop_loss is None
    assert signal.confidence == confidence_from(signal.reasoning)


async def test_too_little_history_and_unknown_symbols_are_clear_errors() -> None:
    engine = engine_for(series(ranging(40)))
    with pytest.raises(ServiceError, match="not enough price history"):
        await engine.get_signal("TEST")
    with pytest.raises(UnknownSymbolError, match="BTCUSD"):
        await engine.get_signal("BTCUSD")
    with pytest.raises(ServiceError, match="Unknown timeframe"):
        await engine.get_signal("TEST", "7m")
