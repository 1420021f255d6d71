"""Indicators and killzones checked against known properties and independent straightforward computations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tools.schemas import Bar
from tools.signals.indicators import atr, ema, percentile_rank, range_position, rsi, swing_highs, swing_lows
from tools.signals.killzones import killzone_at

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def bar(i: int, high: float, low: float, close: float, open_: float | None = None) -> Bar:
    o = close if open_ is None else open_
    return Bar(time=T0 + timedelta(minutes=i), open=o, high=high, low=low, close=close)


def test_ema_of_a_constant_series_is_the_constant() -> None:
    assert ema([3.5] * 50, 20) == pytest.approx([3.5] * 50)


def test_ema_matches_the_closed_form_weighted_sum() -> None:
    # adjust=False EMA = sum_k alpha (1-alpha)^k x_{t-k} + (1-alpha)^t x_0: computed here without recursion
    values = [1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0]
    alpha = 2 / (3 + 1)
    t = len(values) - 1
    closed = sum(alpha * (1 - alpha) ** k * values[t - k] for k in range(t)) + (1 - alpha) ** t * values[0]
    assert ema(values, 3)[-1] == pytest.approx(closed)


def test_rsi_of_monotonic_series() -> None:
    rising = [float(i) for i in range(30)]
    falling = rising[::-1]
    assert rsi(rising, 14)[14:] == [100.0] * 16
    assert rsi(falling, 14)[-1] == pytest.approx(0.0)
    assert rsi(rising, 14)[:14] == [None] * 14
    assert rsi([2.0] * 20, 14)[-1] == 50.0  # no movement at all is neutral, not a division error


def test_rsi_against_an_independent_wilder_computation() -> None:
    rng = np.random.default_rng(7)
    closes = list(100 + np.cumsum(rng.normal(0, 1, 80)))
    diff = np.diff(closes)
    gains, losses = np.clip(diff, 0, None), np.clip(-diff, 0, None)
    g, l_ = gains[:14].mean(), losses[:14].mean()
    for k in range(14, len(diff)):  # Wilder smoothing is an EMA with alpha = 1/14
        g += (gains[k] - g) / 14
        l_ += (losses[k] - l_) / 14
    assert rsi(closes, 14)[-1] == pytest.approx(100 - 100 / (1 + g / l_))


def test_atr_of_known_bars() -> None:
    steady = [bar(i, 11.0, 9.0, 10.0) for i in range(20)]
    assert atr(steady, 14)[-1] == pytest.approx(2.0)
    assert atr(steady, 14)[12] is None
    # a gap up: TR = high - previous close (15 - 10 = 5), not high - low (1)
    gapped = [*steady[:14], bar(14, 15.0, 14.0, 14.5)]
    assert atr(gapped, 14)[-1] == pytest.approx((2.0 * 13 + 5.0) / 14)


def test_swings_find_the_peak_and_the_trough() -> None:
    highs = [10, 11, 12, 15, 12, 11, 10, 9, 8, 9, 10]
    bars = [bar(i, h + 0.5, h - 0.5, h) for i, h in enumerate(highs)]
    assert swing_highs(bars, 2, 2) == [(3, 15.5)]
    assert swing_lows(bars, 2, 2) == [(8, 7.5)]
    # the newest bars cannot be confirmed swings: a peak on the last bar is not reported
    assert swing_highs(bars[:5], 2, 2) == []


def test_range_position_zones() -> None:
    base = [bar(i, 110.0, 100.0, 105.0) for i in range(10)]
    assert range_position([*base, bar(10, 101, 100, 100.0)], 11) == (0.0, "discount")
    assert range_position([*base, bar(10, 110, 109, 110.0)], 11) == (1.0, "premium")
    assert range_position(base, 10) == (0.5, "equilibrium")
    assert percentile_rank([1, 2, 3, 4], 4) == pytest.approx(0.875)


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 1, 15, 7, 0), "london_open"),  # 02:00 EST
        (datetime(2026, 1, 15, 6, 59), "none"),  # 01:59 EST
        (datetime(2026, 7, 15, 6, 0), "london_open"),  # 02:00 EDT (DST): one hour earlier in UTC
        (datetime(2026, 7, 15, 9, 0), "none"),  # 05:00 EDT: the window is half-open
        (datetime(2026, 1, 15, 13, 30), "ny_am"),  # 08:30 EST
        (datetime(2026, 1, 15, 15, 59), "ny_am"),  # 10:59 EST
        (datetime(2026, 7, 15, 15, 0), "none"),  # 11:00 EDT
        (datetime(2026, 7, 15, 12, 30), "ny_am"),  # 08:30 EDT
        (datetime(2026, 3, 9, 12, 30), "ny_am"),  # the Monday after the March DST switch: 08:30 EDT
        (datetime(2026, 1, 15, 12, 30), "none"),  # 07:30 EST
    ],
)
def test_killzones_in_new_york_time(utc: datetime, expected: str) -> None:
    assert killzone_at(utc.replace(tzinfo=UTC)) == expected
