"""The technical engine's rules: features of one bar series -> named confidence components -> a Signal.

Direction = the EMA trend (or, with none, the RSI's side). Confidence = the sum of these components for
that direction, clamped to [0, 1], each one printed in `reasoning` with its points:
  Trend     EMA20/50/200 stacked and EMA50 sloping +0.30; price vs EMA200 and EMA20 vs EMA50 agree +0.15
  Momentum  RSI14 in the trend's Cardwell range +0.20; stretched (>=70 / <=30) +0.05; against 0
  Zone      discount for a long / premium for a short +0.20; equilibrium +0.10; the wrong half 0
  AMD       accumulation/markup for a long, distribution/markdown for a short +0.15; manipulation -0.20
  Killzone  inside London Open or NY AM +0.10
HOLD when any component objects (no trend, momentum or zone or AMD against, a liquidity grab) or the
confidence is under MIN_CONFIDENCE. Entry = ask (long) / bid (short); SL 1.5 ATR, TP 3 ATR (R:R 2).
Everything here is a pure function of (bars, bid, ask, time, spec), so a signal can be re-evaluated at any
past bar and never sees data after its own time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from tools.schemas import Bar, Signal, SymbolSpec
from tools.signals.amd import RANGE_BARS, amd_phase
from tools.signals.indicators import Zone, atr, ema, range_position, rsi
from tools.signals.killzones import killzone_at

ENGINE_LINE = "Built-in technical engine (transparent EMA/RSI/ATR/range rules), not the ML engine."
MIN_BARS = 2 * RANGE_BARS + 20
MIN_CONFIDENCE = 0.60  # the risk gate's default; below it the engine says HOLD rather than a weak trade
SL_ATR = 1.5
TP_ATR = 3.0  # 2 x the stop distance: R:R 2.0
SLOPE_BARS = 5

Direction = Literal["LONG", "SHORT"]


@dataclass
class Features:
    close: float
    ema20: float
    ema50: float
    ema200: float
    ema50_slope: float
    rsi14: float
    atr14: float
    range_pos: float
    zone: Zone
    amd_phase: str
    amd_reason: str
    killzone: str


@dataclass
class Score:
    direction: Direction
    components: list[tuple[str, float]] = field(default_factory=list)  # (reasoning text, points)
    objections: list[str] = field(default_factory=list)  # why not to trade, if any

    def add(self, text: str, points: float, objection: str | None = None) -> None:
        self.components.append((text, points))
        if objection:
            self.objections.append(objection)

    @property
    def confidence(self) -> float:
        return round(min(1.0, max(0.0, sum(p for _, p in self.components))), 2)


def features(bars: Sequence[Bar], now: datetime) -> Features:
    """Indicator values at the last bar. Needs MIN_BARS bars (EMA200 is then approximate but stable)."""
    closes = [b.close for b in bars]
    e20, e50, e200 = ema(closes, 20), ema(closes, 50), ema(closes, 200)
    rsi_last = rsi(closes, 14)[-1]
    atr_last = atr(bars, 14)[-1]
    if rsi_last is None or atr_last is None:
        raise ValueError("not enough bars for RSI/ATR")
    pos, zone = range_position(bars, RANGE_BARS)
    phase, phase_reason = amd_phase(bars, atr_last, e20[-1], e50[-1])
    return Features(
        close=closes[-1],
        ema20=e20[-1],
        ema50=e50[-1],
        ema200=e200[-1],
        ema50_slope=e50[-1] - e50[-1 - SLOPE_BARS],
        rsi14=rsi_last,
        atr14=atr_last,
        range_pos=pos,
        zone=zone,
        amd_phase=phase,
        amd_reason=phase_reason,
        killzone=killzone_at(now),
    )


def trend_of(f: Features) -> tuple[Direction | None, float, str]:
    """EMA structure: full stack with a rising/falling EMA50 (0.30), partial agreement (0.15), or none."""
    if f.ema20 > f.ema50 > f.ema200 and f.ema50_slope > 0:
        return "LONG", 0.30, "Trend: EMA20 > EMA50 > EMA200 and EMA50 rising"
    if f.ema20 < f.ema50 < f.ema200 and f.ema50_slope < 0:
        return "SHORT", 0.30, "Trend: EMA20 < EMA50 < EMA200 and EMA50 falling"
    if f.close > f.ema200 and f.ema20 > f.ema50:
        return "LONG", 0.15, "Trend: price above EMA200 and EMA20 > EMA50 (not fully stacked)"
    if f.close < f.ema200 and f.ema20 < f.ema50:
        return "SHORT", 0.15, "Trend: price below EMA200 and EMA20 < EMA50 (not fully stacked)"
    return None, 0.0, "Trend: EMAs mixed, no trend"


def score(f: Features) -> Score:
    """Named components for the trend's direction (or, with no trend, the RSI's side)."""
    trend_dir, trend_pts, trend_text = trend_of(f)
    direction: Direction = trend_dir or ("LONG" if f.rsi14 >= 50 else "SHORT")
    s = Score(direction)
    s.add(trend_text, trend_pts, None if trend_dir else "no EMA trend")
    long = direction == "LONG"
    # Cardwell's trend ranges: RSI holds 40-80 in uptrends and 20-60 in downtrends, so a pullback to 45
    # still confirms a long; beyond 70 (30) the move is stretched and the entry late.
    with_rsi = 40 <= f.rsi14 < 70 if long else 30 < f.rsi14 <= 60
    stretched = f.rsi14 >= 70 if long else f.rsi14 <= 30
    if with_rsi:
        s.add(f"Momentum: RSI14 {f.rsi14:.1f} confirms {direction}", 0.20)
    elif stretched:
        s.add(f"Momentum: RSI14 {f.rsi14:.1f} {'overbought' if long else 'oversold'}, late entry", 0.05)
    else:
        s.add(f"Momentum: RSI14 {f.rsi14:.1f} against {direction}", 0.0, "momentum disagrees")
    favoured = "discount" if long else "premium"
    zone_text = f"Zone: price at {f.range_pos:.0%} of the {RANGE_BARS}-bar range ({f.zone})"
    if f.zone == favoured:
        s.add(f"{zone_text} favours {direction}", 0.20)
    elif f.zone == "equilibrium":
        s.add(zone_text, 0.10)
    else:
        s.add(f"{zone_text} is against {direction}", 0.0, f"price in {f.zone} for a {direction}")
    _score_amd(s, f, long)
    kz_pts = 0.10 if f.killzone != "none" else 0.0
    s.add(f"Killzone: {f.killzone if f.killzone != 'none' else 'outside the ICT killzones'}", kz_pts)
    return s


def _score_amd(s: Score, f: Features, long: bool) -> None:
    helps = ("accumulation", "markup") if long else ("distribution", "markdown")
    hurts = ("distribution", "markdown") if long else ("accumulation", "markup")
    if f.amd_phase == "manipulation":
        s.add(f.amd_reason, -0.20, "liquidity grab in progress (AMD manipulation)")
    elif f.amd_phase in helps:
        s.add(f.amd_reason, 0.15)
    elif f.amd_phase in hurts:
        s.add(f.amd_reason, 0.0, f"AMD {f.amd_phase} is against {s.direction}")
    else:
        s.add(f.amd_reason, 0.0)


def evaluate(
    symbol: str,
    timeframe: str,
    bars: Sequence[Bar],
    bid: float,
    ask: float,
    now: datetime,
    spec: SymbolSpec,
    notes: Sequence[str] = (),
) -> Signal:
    """The Signal at `now` from `bars` (all opened at or before `now`) and the quote."""
    if len(bars) < MIN_BARS:
        raise ValueError(f"{len(bars)} {timeframe} bars, the technical engine needs {MIN_BARS}")
    f = features(bars, now)
    s = score(f)
    reasoning = [ENGINE_LINE, *notes]
    reasoning += [f"{text} ({points:+.2f})" for text, points in s.components]
    confidence = s.confidence
    objections = list(s.objections)
    if spec.round_price(SL_ATR * f.atr14) <= 0:
        objections.append(f"no price movement (ATR {spec.round_price(f.atr14)}), no stop distance")
    if confidence < MIN_CONFIDENCE:
        objections.append(f"confidence {confidence:.2f} below {MIN_CONFIDENCE:.2f}")
    hold = Signal(
        symbol=symbol,
        timeframe=timeframe,
        action="HOLD",
        confidence=confidence,
        amd_phase=f.amd_phase,
        killzone=f.killzone,
        reasoning=reasoning,
        generated_at=now,
    )
    if objections:
        return hold.model_copy(
            update={"reasoning": [*reasoning, f"Decision: HOLD ({'; '.join(objections)})"]}
        )
    entry = spec.round_price(ask if s.direction == "LONG" else bid)
    sign = 1 if s.direction == "LONG" else -1
    stop = spec.round_price(entry - sign * SL_ATR * f.atr14)
    target = spec.round_price(entry + sign * TP_ATR * f.atr14)
    rr = round(abs(target - entry) / abs(entry - stop), 2)
    reasoning = [
        *reasoning,
        f"Levels: ATR14 {spec.pips(f.atr14)} pips; SL {SL_ATR} ATR = {spec.pips(entry - stop)} pips, "
        f"TP {TP_ATR} ATR = {spec.pips(target - entry)} pips, R:R {rr}",
        f"Decision: {s.direction} at {'ask' if sign > 0 else 'bid'} {entry}",
    ]
    levels = {"entry_price": entry, "stop_loss": stop, "take_profit": target, "risk_reward": rr}
    return hold.model_copy(update={"action": s.direction, "reasoning": reasoning, **levels})
