"""The user's account and the market around it: portfolio, closed trades, performance, quotes, specs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from server.api.deps import AccountDep, CurrentUser, KnownSymbol, ServicesDep
from server.api.performance import Performance, TradeRow, performance, trade_row
from server.api.responses import BROKER, READ, SYMBOL
from tools.broker.ledger import ClosedTrade
from tools.schemas import Portfolio, Quote, SymbolSpec
from tools.services import Services

router = APIRouter(prefix="/api", tags=["portfolio"])

NO_HISTORY = (
    "this broker does not report closed trades (the platform's trading service has no history contract)"
)


class SymbolInfo(SymbolSpec):
    """A symbol's spec as clients get it: keyed by its name, and without the spread (the server's concern)."""

    symbol: str = Field(exclude=True)
    spread_pips: float = Field(0.0, exclude=True)


class TradeHistory(BaseModel):
    trades: list[TradeRow]  # newest first


@router.get("/portfolio", response_model=Portfolio, responses=BROKER)
async def get_portfolio(account: AccountDep, services: ServicesDep) -> Portfolio:
    """Balance, equity, margin, open positions and P&L, read live from the broker (never cached)."""
    return await services.broker.get_portfolio(account)


async def closed_trades(services: Services, account: str) -> list[ClosedTrade]:
    """The account's closed trades, oldest first (the embedded paper broker keeps them)."""
    history: Callable[[str], Awaitable[list[ClosedTrade]]] | None = getattr(services.broker, "history", None)
    if history is None:
        raise HTTPException(501, NO_HISTORY)
    return await history(account)


@router.get("/trades", response_model=TradeHistory, responses=BROKER)
async def get_trades(account: AccountDep, services: ServicesDep) -> TradeHistory:
    """Closed trades, newest first: prices, P&L, how long each was open and why it closed (sl, tp, manual)."""
    trades = await closed_trades(services, account)
    return TradeHistory(trades=[trade_row(t) for t in reversed(trades)])


@router.get("/performance", response_model=Performance, responses=BROKER)
async def get_performance(account: AccountDep, services: ServicesDep) -> Performance:
    """Realized P&L: totals, win rate, the balance after each closed trade, daily and weekly figures."""
    trades = await closed_trades(services, account)
    portfolio = await services.broker.get_portfolio(account)
    return performance(trades, portfolio.balance)


@router.get("/symbols", responses=READ)
async def get_symbols(user: CurrentUser, services: ServicesDep) -> dict[str, SymbolInfo]:
    """Per symbol: digits, pip and lot sizes, contract size and quote currency, so clients show prices, pips
    and money estimates the way the server computes them."""
    return {name: SymbolInfo(**spec.model_dump()) for name, spec in services.specs.items()}


@router.get("/quote/{symbol}", response_model=Quote, responses=SYMBOL)
async def get_quote(user: CurrentUser, name: KnownSymbol, services: ServicesDep) -> Quote:
    """Bid/ask now (replay or platform time), to place SL/TP sensibly before asking for a trade."""
    return await services.market.get_quote(name)
