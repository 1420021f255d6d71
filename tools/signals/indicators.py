"""Pure technical indicators on plain lists (EMA, Wilder RSI/ATR, swings, range position); no pandas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from tools.schemas import Bar

Zone = Literal["premium", "discount", "equilibrium"]

# ICT's equilibrium is the 50% line of the dealing range; a small band around it is neither side.
EQUILIBRIUM_BAND = (0.45, 0.55)


def ema(values: Sequence[float], period: int) -> list[float]:
    """Exponential moving average, alpha = 2/(period+1), seeded with the first value (pandas adjust=False)."""
    if period < 1:
        raise ValueError("period must be >= 1")
    alpha = 2.0 / (period + 1)
    out: list[float] = []
    for value in values:
        out.append(value if not out else out[-1] + alpha * (value - out[-1]))
    return out


def rsi(values: Sequence[float], period: int = 14) -> list[float | None]:
    """Wilder's RSI (0..100). None until `period` changes exist; a series that never falls gives 100."""
    out: list[float | None] = [None] * len(values)
    if len(values) <= period:
        return out
    changes = [values[i] - values[i - 1] for i in range(1, len(values))]
    avg_gain = sum(max(c, 0.0) for c in changes[:period]) / period
    avg_loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    out[period] = _rsi_value(avg_gain, avg_loss)
    for i in range(period, len(changes)):
        change = changes[i]
        avg_gain = (avg_gain * (period - 1) + max(change, 0.0)) / period
        avg_loss = (avg_loss * (period - 1) + max(-change, 0.0)) / period
        out[i + 1] = _rsi_value(avg_gain, avg_loss)
    return out


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0:
        return 50.0 if avg_gain == 0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def true_ranges(bars: Sequence[Bar]) -> list[float]:
    """True range per bar; the first bar has no previous close, so its range is high - low."""
    out: list[float] = []
    for i, bar in enumerate(bars):
        if i == 0:
            out.append(bar.high - bar.low)
            continue
        prev_close = bars[i - 1].close
        out.append(max(bar.high - bar.low, abs(bar.high - prev_close), abs(bar.low - prev_close)))
    return out


def atr(bars: Sequence[Bar], period: int = 14) -> list[float | None]:
    """Wilder's ATR: the mean of the first `period` true ranges, then (prev*(n-1) + TR)/n."""
    trs = true_ranges(bars)
    out: list[float | None] = [None] * len(trs)
    if len(trs) < period:
        return out
    value = sum(trs[:period]) / period
    out[period - 1] = value
    for i in range(period, len(trs)):
        value = (value * (period - 1) + trs[i]) / period
        out[i] = value
    return out


def swing_highs(bars: Sequence[Bar], left: int = 2, right: int = 2) -> list[tuple[int, float]]:
    """(index, high) of bars whose high exceeds the `left` bars before and is not topped by the `right` after.

    A swing needs `right` later bars to be confirmed, so the newest `right` bars are never swings.
    """
    out: list[tuple[int, float]] = []
    for i in range(left, len(bars) - right):
        high = bars[i].high
        if all(b.high < high for b in bars[i - left : i]) and all(
            b.high <= high for b in bars[i + 1 : i + 1 + right]
        ):
            out.append((i, high))
    return out


def swing_lows(bars: Sequence[Bar], left: int = 2, right: int = 2) -> list[tuple[int, float]]:
    """(index, low) of confirmed swing lows; the mirror image of `swing_highs`."""
    out: list[tuple[int, float]] = []
    for i in range(left, len(bars) - right):
        low = bars[i].low
        if all(b.low > low for b in bars[i - left : i]) and all(
            b.low >= low for b in bars[i + 1 : i + 1 + right]
        ):
            out.append((i, low))
    return out


def range_position(bars: Sequence[Bar], lookback: int) -> tuple[float, Zone]:
    """Where the last close sits in the high-low range of the last `lookback` bars: 0 = low, 1 = high.

    Below the equilibrium band is "discount" (favours longs), above it "premium" (favours shorts).
    """
    window = bars[-lookback:]
    if not window:
        raise ValueError("range_position needs at least one bar")
    high = max(b.high for b in window)
    low = min(b.low for b in window)
    position = 0.5 if high == low else (window[-1].close - low) / (high - low)
    if position < EQUILIBRIUM_BAND[0]:
        return position, "discount"
    if position > EQUILIBRIUM_BAND[1]:
        return position, "premium"
    return position, "equilibrium"


def percentile_rank(values: Sequence[float], value: float) -> float:
    """Share (0..1) of `values` strictly below `value`, ties counted half."""
    if not values:
        return 0.5
    below = sum(1 for v in values if v < value)
    equal = sum(1 for v in values if v == value)
    return (below + 0.5 * equal) / len(values)
