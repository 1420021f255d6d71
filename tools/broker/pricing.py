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


LevelKind = Literal["stop_loss", "take_profit"]


def level_side(side: Side, kind: LevelKind) -> Literal["below", "above"]:
    """Where a level goes for a trade of `side`: a BUY's stop below the price and its target above; a SELL
    reversed."""
    return "below" if (side == "BUY") == (kind == "stop_loss") else "above"


def wrong_side(side: Side, kind: LevelKind, level: float, price: float) -> Literal["below", "above"] | None:
    """The one stop-side check (the risk gate against the entry, a modify against the exit price, the broker
    against its quote): None when `level` is strictly on its side of `price`, else where it must be."""
    where = level_side(side, kind)
    wrong = level >= price if where == "below" else level <= price
    return where if wrong else None


def entry_price(spec: SymbolSpec, side: Side, quote: Quote) -> float:
    """Where a market order of `side` fills now with no slippage: a BUY at the ask, a SELL at the bid."""
    return open_fill(spec, side, quote, 0.0)


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
    """Margin held for a position: notional / leverage in USD. The notional is in the base currency; its USD
    value is decided as SymbolSpec.money decides it, by the quote currency: a USD-quoted symbol (XAUUSD,
    EURUSD) is worth `price` USD per unit, a USD-base one (USDJPY, quoted in JPY) one USD per unit."""
    notional = lots * spec.contract_size
    if spec.quote_currency == "USD":
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
    # A stop against the closing side's price, a target against the opening side's.
    closing, opening = ("bid", "ask") if side == "BUY" else ("ask", "bid")
    levels: list[tuple[LevelKind, float | None, str, float]] = [
        ("stop_loss", stop_loss, closing, mark_price(spec, side, quote)),
        ("take_profit", take_profit, opening, entry_price(spec, side, quote)),
    ]
    for kind, level, quoted, price in levels:
        where = wrong_side(side, kind, level, price) if level is not None else None
        if where is not None:
            return f"{kind.replace('_', ' ')} {level} must be {where} the {quoted} {price} for a {side}"
    return None


def lot_problem(spec: SymbolSpec, lots: float) -> Literal["bounds", "step"] | None:
    """The one lot-bound check (the risk gate's and the broker's): outside the symbol's min..max, or not a
    multiple of its lot step (float noise below 1e-8 lots, e.g. 0.1 + 0.2, is a multiple)."""
    if lots < spec.min_lot - 1e-9 or lots > spec.max_lot + 1e-9:
        return "bounds"
    if spec.round_lots_down(lots) != round(lots, 8):
        return "step"
    return None


def lots_error(spec: SymbolSpec, lots: float) -> str | None:
    problem = lot_problem(spec, lots)
    if problem == "bounds":
        return f"size {lots} lots is outside [{spec.min_lot}, {spec.max_lot}] for {spec.symbol}"
    if problem == "step":
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
