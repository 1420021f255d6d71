"""TechnicalEngine: the embedded SignalSource (transparent rules over MarketData), the ML engine stand-in."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from tools.protocols import Clock, MarketData, ServiceError, UnknownSymbolError
from tools.schemas import TIMEFRAME_MINUTES, Analysis, Bar, ICTContext, Signal, SymbolSpec
from tools.signals import scoring
from tools.signals.levels import key_levels, volatility_of

BARS_FETCHED = 300  # EMA200 plus warm-up; 25 hours of 5m bars
LEVEL_BARS = 200  # 1h bars searched for swing levels (~8 trading days)
RECENT_SIGNALS = 3  # the current signal plus the ones at the two previous bar closes


class TechnicalEngine:
    """SignalSource from transparent rules (see tools.signals.scoring for every rule and weight).

    Timeframes finer than the symbol's data (5m on an H1-only EURUSD file) are not invented: the engine
    falls back to the next coarser timeframe the data serves and says so in the reasoning.
    """

    def __init__(self, market: MarketData, clock: Clock, specs: dict[str, SymbolSpec]) -> None:
        self.market = market
        self.clock = clock
        self.specs = specs

    async def get_signal(self, symbol: str, timeframe: str = "5m") -> Signal:
        spec = self._spec(symbol)
        used, bars, notes = await self._bars(spec.symbol, timeframe)
        quote = await self.market.get_quote(spec.symbol)
        return self._evaluate(spec, used, bars, quote.bid, quote.ask, notes)

    async def analyze(self, symbol: str, timeframe: str = "5m") -> Analysis:
        """Market state: trend, AMD, killzone, premium/discount, swing levels (1h), ATR volatility."""
        spec = self._spec(symbol)
        used, bars, notes = await self._bars(spec.symbol, timeframe)
        quote = await self.market.get_quote(spec.symbol)
        now = self.clock.now()
        signal = self._evaluate(spec, used, bars, quote.bid, quote.ask, notes)
        recent = [signal, *self._previous_signals(spec, used, bars, quote.ask - quote.bid, notes)]
        f = scoring.features(bars, now)
        direction, _, _ = scoring.trend_of(f)
        trend: Literal["bullish", "bearish", "ranging"] = (
            "bullish" if direction == "LONG" else "bearish" if direction == "SHORT" else "ranging"
        )
        hourly = await self._hourly(spec.symbol, used, bars)
        price = spec.round_price(quote.mid)
        return Analysis(
            symbol=spec.symbol,
            current_price=price,
            amd_phase=f.amd_phase,
            ict_context=ICTContext(killzone=f.killzone, ote_zone=f.zone, score=signal.confidence),
            key_levels=key_levels(hourly, price, spec),
            recent_signals=recent,
            trend=trend,
            volatility=volatility_of(bars),
            as_of=now,
        )

    def _spec(self, symbol: str) -> SymbolSpec:
        key = symbol.strip().upper()
        if key not in self.specs or key not in self.market.symbols():
            known = ", ".join(sorted(set(self.specs) & set(self.market.symbols()))) or "none"
            raise UnknownSymbolError(f"Unknown symbol {symbol!r}; the technical engine covers: {known}")
        return self.specs[key]

    def _evaluate(
        self, spec: SymbolSpec, tf: str, bars: Sequence[Bar], bid: float, ask: float, notes: Sequence[str]
    ) -> Signal:
        try:
            return scoring.evaluate(spec.symbol, tf, bars, bid, ask, self.clock.now(), spec, notes)
        except ValueError as exc:
            raise ServiceError(f"{spec.symbol}: not enough price history for a signal ({exc})") from exc

    def _previous_signals(
        self, spec: SymbolSpec, tf: str, bars: Sequence[Bar], spread: float, notes: Sequence[str]
    ) -> list[Signal]:
        """Signals as they were at the previous bar closes (bid = that bar's close); newest first."""
        out = []
        for k in range(1, RECENT_SIGNALS):
            past = bars[:-k]
            if len(past) < scoring.MIN_BARS:
                break
            at = bars[-k].time  # the next bar's open = the moment `past[-1]` closed
            bid = past[-1].close
            out.append(scoring.evaluate(spec.symbol, tf, past, bid, bid + spread, at, spec, notes))
        return out

    async def _bars(self, symbol: str, timeframe: str) -> tuple[str, list[Bar], list[str]]:
        """(timeframe used, bars, reasoning notes): the requested timeframe or the next coarser one served."""
        if timeframe not in TIMEFRAME_MINUTES:
            raise ServiceError(f"Unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAME_MINUTES)}")
        candidates = [tf for tf, m in TIMEFRAME_MINUTES.items() if m >= TIMEFRAME_MINUTES[timeframe]]
        last_error = ""
        for tf in candidates:
            try:
                bars = await self.market.get_bars(symbol, tf, BARS_FETCHED)
            except UnknownSymbolError:
                raise
            except ServiceError as exc:
                last_error = str(exc)
                continue
            if bars and _finest_spacing(bars) <= timedelta(minutes=TIMEFRAME_MINUTES[tf]):
                notes = (
                    []
                    if tf == timeframe
                    else [f"Timeframe: {timeframe} is not available for {symbol}; used {tf}"]
                )
                return tf, bars, notes
            last_error = f"no {tf} bars"
        raise ServiceError(f"{symbol}: no bars for {timeframe} or coarser ({last_error})")

    async def _hourly(self, symbol: str, used: str, bars: list[Bar]) -> list[Bar]:
        if used == "1h":
            return bars[-LEVEL_BARS:]
        try:
            return await self.market.get_bars(symbol, "1h", LEVEL_BARS)
        except ServiceError:
            return bars[-LEVEL_BARS:]  # coarser-only data (4h/1d): levels from what is served


def _finest_spacing(bars: Sequence[Bar]) -> timedelta:
    """Smallest gap between consecutive bars: a source that silently served coarser bars shows up here."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(bars)]
    return min(gaps) if gaps else timedelta(0)
