"""Key levels (nearest swing highs/lows around the price) and ATR-percentile volatility."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from tools.schemas import Bar, KeyLevels, SymbolSpec
from tools.signals.indicators import atr, percentile_rank, swing_highs, swing_lows

LEVELS_PER_SIDE = 3
SWING_SPAN = 3  # bars each side that a swing must top (1h bars: a 7-hour pivot)
MIN_GAP_FRACTION = 0.0005  # two swings 0.05% apart (2 USD on gold, 6 pips on EURUSD) are one level
VOLATILITY_HISTORY = 200  # ATR values the current one is ranked against


def key_levels(bars: Sequence[Bar], price: float, spec: SymbolSpec) -> KeyLevels:
    """Up to 3 swing highs above the price (nearest first) and 3 swing lows below it (nearest first)."""
    highs = {spec.round_price(p) for _, p in swing_highs(bars, SWING_SPAN, SWING_SPAN)}
    lows = {spec.round_price(p) for _, p in swing_lows(bars, SWING_SPAN, SWING_SPAN)}
    resistance = _distinct(sorted(p for p in highs if p > price), price)
    support = _distinct(sorted((p for p in lows if p < price), reverse=True), price)
    return KeyLevels(resistance=resistance, support=support)


def _distinct(levels: list[float], price: float) -> list[float]:
    """The nearest LEVELS_PER_SIDE levels, skipping any within MIN_GAP_FRACTION of the previous one kept."""
    out: list[float] = []
    for level in levels:
        if not out or abs(level - out[-1]) >= MIN_GAP_FRACTION * price:
            out.append(level)
        if len(out) == LEVELS_PER_SIDE:
            break
    return out


def volatility_of(bars: Sequence[Bar]) -> Literal["low", "medium", "high"]:
    """Current ATR14 ranked among the last VOLATILITY_HISTORY ATR values: bottom third low, top third high."""
    values = [v for v in atr(bars, 14) if v is not None][-VOLATILITY_HISTORY:]
    if not values:
        return "medium"
    rank = percentile_rank(values, values[-1])
    if rank < 1 / 3:
        return "low"
    if rank > 2 / 3:
        return "high"
    return "medium"
