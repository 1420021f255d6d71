"""AMD (accumulation / manipulation / distribution) phase heuristic on one timeframe's bars."""

from __future__ import annotations

from collections.abc import Sequence

from tools.schemas import Bar
from tools.signals.indicators import range_position

RANGE_BARS = 48  # the "recent range": 4 hours of 5m bars
SWEEP_BARS = 3  # a liquidity grab must have happened within the last 3 bars
TIGHT_RANGE_ATR = 6.0  # a random walk of 48 bars spans ~9 ATR; under 6 ATR is a compressed range
PRIOR_MOVE_ATR = 3.0  # the move before the range that makes it a base (after a decline) or a top


def amd_phase(bars: Sequence[Bar], atr_value: float, ema_fast: float, ema_slow: float) -> tuple[str, str]:
    """(phase, reason). Rules, first match wins:

    1. manipulation: one of the last SWEEP_BARS bars traded beyond the high (or low) of the RANGE_BARS
       before them and closed back inside, and the last close is still inside: a liquidity grab.
    2. accumulation: the last RANGE_BARS span <= TIGHT_RANGE_ATR x ATR, and either the close is in the
       discount half of the wider 3 x RANGE_BARS context or the range followed a decline of
       >= PRIOR_MOVE_ATR x ATR.
    3. distribution: the same tight range in premium of the context, or after a rally.
    4. markup / markdown: close above (below) the slow EMA with the fast EMA above (below) it.
    5. unknown otherwise (including a tight range with no context, or too little history).
    """
    if len(bars) < 2 * RANGE_BARS + SWEEP_BARS or atr_value <= 0:
        return "unknown", "AMD: not enough history for a phase"
    sweep = _sweep(bars)
    if sweep:
        return "manipulation", sweep
    window = bars[-RANGE_BARS:]
    span = max(b.high for b in window) - min(b.low for b in window)
    close = bars[-1].close
    if span <= TIGHT_RANGE_ATR * atr_value:
        _, zone = range_position(bars, 3 * RANGE_BARS)
        prior_move = (bars[-RANGE_BARS].close - bars[-2 * RANGE_BARS].close) / atr_value
        width = span / atr_value
        detail = f"{RANGE_BARS}-bar range {width:.1f} ATR wide, {zone}, prior move {prior_move:+.1f} ATR"
        if zone == "discount" or prior_move <= -PRIOR_MOVE_ATR:
            return "accumulation", f"AMD accumulation: {detail}"
        if zone == "premium" or prior_move >= PRIOR_MOVE_ATR:
            return "distribution", f"AMD distribution: {detail}"
        return "unknown", f"AMD: tight range without context ({detail})"
    if close > ema_slow and ema_fast > ema_slow:
        return "markup", "AMD markup: expanding range above the slow EMA"
    if close < ema_slow and ema_fast < ema_slow:
        return "markdown", "AMD markdown: expanding range below the slow EMA"
    return "unknown", "AMD: expanding range without EMA direction"


def _sweep(bars: Sequence[Bar]) -> str | None:
    """Describe a sweep of the recent range's high or low that closed back inside, or None."""
    prior = bars[-(RANGE_BARS + SWEEP_BARS) : -SWEEP_BARS]
    range_high = max(b.high for b in prior)
    range_low = min(b.low for b in prior)
    last_close = bars[-1].close
    if not range_low < last_close < range_high:
        return None
    for bar in bars[-SWEEP_BARS:]:
        if bar.high > range_high and bar.close < range_high:
            return (
                f"AMD manipulation: swept the range high {range_high} and closed back inside (liquidity grab)"
            )
        if bar.low < range_low and bar.close > range_low:
            return (
                f"AMD manipulation: swept the range low {range_low} and closed back inside (liquidity grab)"
            )
    return None
