"""Closed trades as a trader reads them: P&L, duration, exit reason, equity curve, daily and weekly figures.

Plain Python over the broker's closed-trade records; no framework import, so it is testable on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pydantic import BaseModel

from tools.broker.ledger import ClosedTrade


class TradeRow(ClosedTrade):
    """A closed trade as the trader reads it: the ledger's record and how long the position was open."""

    duration_seconds: int


class EquityPoint(BaseModel):
    time: int  # UTC epoch seconds of the close that realized it (the first point: the first trade's open)
    balance_usd: float


class PeriodStats(BaseModel):
    start: date  # the day, or the Monday of the week (market clock, UTC)
    trades: int
    wins: int
    losses: int
    pnl_usd: float
    best_usd: float
    worst_usd: float


class Performance(BaseModel):
    trades: int
    wins: int
    losses: int
    win_rate_pct: float | None
    pnl_usd: float
    equity: list[EquityPoint]
    daily: list[PeriodStats]  # newest first
    weekly: list[PeriodStats]  # newest first


def trade_row(trade: ClosedTrade) -> TradeRow:
    seconds = max(0, int((trade.close_time - trade.open_time).total_seconds()))
    return TradeRow(**trade.model_dump(), duration_seconds=seconds)


def _period(start: date, trades: Sequence[ClosedTrade]) -> PeriodStats:
    pnls = [t.pnl_usd for t in trades]
    return PeriodStats(
        start=start,
        trades=len(pnls),
        wins=sum(1 for p in pnls if p > 0),
        losses=sum(1 for p in pnls if p < 0),
        pnl_usd=round(sum(pnls), 2),
        best_usd=round(max(pnls), 2),
        worst_usd=round(min(pnls), 2),
    )


def _grouped(trades: Sequence[ClosedTrade], weekly: bool = False) -> list[PeriodStats]:
    groups: dict[date, list[ClosedTrade]] = {}
    for trade in trades:
        day = trade.close_time.date()
        start = day - timedelta(days=day.weekday()) if weekly else day
        groups.setdefault(start, []).append(trade)
    return [_period(start, groups[start]) for start in sorted(groups, reverse=True)]


def performance(trades: Sequence[ClosedTrade], balance_usd: float) -> Performance:
    """`balance_usd` is the account's balance now: the curve ends there, so it holds whatever the deposits."""
    ordered = sorted(trades, key=lambda t: (t.close_time, t.ticket))
    pnls = [t.pnl_usd for t in ordered]
    running = round(balance_usd - sum(pnls), 2)
    equity: list[EquityPoint] = []
    if ordered:
        equity.append(EquityPoint(time=int(ordered[0].open_time.timestamp()), balance_usd=running))
    for trade in ordered:
        running = round(running + trade.pnl_usd, 2)
        point = EquityPoint(time=int(trade.close_time.timestamp()), balance_usd=running)
        if equity and equity[-1].time >= point.time:  # one point per second: charts need rising times
            equity[-1] = point.model_copy(update={"time": equity[-1].time})
        else:
            equity.append(point)
    wins = sum(1 for p in pnls if p > 0)
    return Performance(
        trades=len(pnls),
        wins=wins,
        losses=sum(1 for p in pnls if p < 0),
        win_rate_pct=round(wins / len(pnls) * 100, 1) if pnls else None,
        pnl_usd=round(sum(pnls), 2),
        equity=equity,
        daily=_grouped(ordered),
        weekly=_grouped(ordered, weekly=True),
    )
