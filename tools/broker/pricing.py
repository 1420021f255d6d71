"""Paper-trading arithmetic: fill prices, margin, P&L and SL/TP detection on bars (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tools.schemas import Bar, Quote, Side, SymbolSpec

ExitReason = Literal["sl", "tp", "manual"]


@dataclass(frozen=True)
class Exit:
    price: float
    time: datetime
    reason: ExitReason


def past(bar: Bar) -> datetime:
    """A check mark just after `bar` opened: bars opening at or after it are still to be examined.

    Bars carry no length, so "after this bar" is its open time plus a microsecond, which works for
    any timeframe and with market data that also returns the bar still forming at `since`.
    """
    return bar.time + timedelta(microseconds=1)


def spread_price(spec: SymbolSpec) -> float:
    return spec.spread_pips * spec.pip_size


def open_fill(spec: SymbolSpec, side: Side, quote: Quote, slippage_pips: float) -> float:
    """BUY pays the ask, SELL gets the bid; slippage always moves the fill against the trader."""
    slip = slippage_pips * spec.pip_size
    price = quote.ask + slip if side == "BUY" else quote.bid - slip
    return spec.round_price(price)


def close_fill(spec: SymbolSpec, side: Side, quote: Quote, slippage_pips: float) -> float:
    """A BUY closes by selling at the bid, a SELL by buying at the ask; slippage against the trader."""
    slip = slippage_pips * spec.pip_size
    price = quote.bid - slip if side == "BUY" else quote.ask + slip
    return spec.round_price(price)


def mark_price(spec: SymbolSpec, side: Side, quote: Quote) -> float:
    """The price an open position would close at now (no slippage): bid for BUY, ask for SELL."""
    return spec.round_price(quote.bid if side == "BUY" else quote.ask)


def margin_usd(spec: SymbolSpec, lots: float, price: float, leverage: float) -> float:
    """Margin held for a position: notional / leverage in USD; USD-base pairs (USDJPY) need no conversion."""
    notional = lots * spec.contract_size
    if not spec.symbol.upper().startswith("USD"):
        notional *= price
    return round(notional / leverage, 2)


def pnl_usd(spec: SymbolSpec, side: Side, lots: float, open_price: float, close_price: float) -> float:
    distance = close_price - open_price if side == "BUY" else open_price - close_price
    return spec.money(distance, lots, close_price)


def stops_error(
    spec: SymbolSpec, side: Side, quote: Quote, stop_loss: float | None, take_profit: float | None
) -> str | None:
    """Why SL/TP are unusable against the current quote, or None.

    The SL is compared with the price the position would close at (bid for BUY, ask for SELL), so a
    stop inside the spread, which would trigger on the next tick, is refused too.
    """
    bid, ask = spec.round_price(quote.bid), spec.round_price(quote.ask)
    if side == "BUY":
        if stop_loss is not None and stop_loss >= bid:
            return f"stop loss {stop_loss} must be below the bid {bid} for a BUY"
        if take_profit is not None and take_profit <= ask:
            return f"take profit {take_profit} must be above the ask {ask} for a BUY"
    else:
        if stop_loss is not None and stop_loss <= ask:
            return f"stop loss {stop_loss} must be above the ask {ask} for a SELL"
        if take_profit is not None and take_profit >= bid:
            return f"take profit {take_profit} must be below the bid {bid} for a SELL"
    return None


def lots_error(spec: SymbolSpec, lots: float) -> str | None:
    if lots < spec.min_lot - 1e-9 or lots > spec.max_lot + 1e-9:
        return f"size {lots} lots is outside [{spec.min_lot}, {spec.max_lot}] for {spec.symbol}"
    steps = lots / spec.lot_step
    if abs(steps - round(steps)) > 1e-6:
        return f"size {lots} lots is not a multiple of the lot step {spec.lot_step} for {spec.symbol}"
    return None


def find_exit(
    spec: SymbolSpec,
    side: Side,
    stop_loss: float | None,
    take_profit: float | None,
    bars: list[Bar],
) -> Exit | None:
    """First bar whose range reaches the SL or TP; bars are bid prices, the ask is bid + spread.

    When one bar reaches both, the SL is assumed first (we cannot know the order inside the bar, and
    assuming the loss is the conservative choice). A bar that opens beyond the SL (a gap) fills at its
    open, the price a real stop order would have got.
    """
    spread = spread_price(spec) if side == "SELL" else 0.0
    for bar in bars:
        low, high, open_ = bar.low + spread, bar.high + spread, bar.open + spread
        if stop_loss is not None:
            if side == "BUY" and low <= stop_loss:
                return Exit(spec.round_price(min(stop_loss, open_)), bar.time, "sl")
            if side == "SELL" and high >= stop_loss:
                return Exit(spec.round_price(max(stop_loss, open_)), bar.time, "sl")
        if take_profit is not None:
            if side == "BUY" and high >= take_profit:
                return Exit(spec.round_price(take_profit), bar.time, "tp")
            if side == "SELL" and low <= take_profit:
                return Exit(spec.round_price(take_profit), bar.time, "tp")
    return None
