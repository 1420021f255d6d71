"""The current user's account and the market around it: portfolio, quotes, symbol specs."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from graph.copilot import account_for
from server.api.deps import CopilotDep, CurrentUser
from tools.schemas import Portfolio, Quote

router = APIRouter(prefix="/api", tags=["portfolio"])


@router.get("/portfolio", response_model=Portfolio)
async def get_portfolio(user: CurrentUser, copilot: CopilotDep) -> Portfolio:
    """Balance, equity, margin, open positions and P&L, read live from the broker (never cached)."""
    return await copilot.services.broker.get_portfolio(account_for(user))


@router.get("/symbols")
async def get_symbols(user: CurrentUser, copilot: CopilotDep) -> dict[str, dict[str, float | int]]:
    """Digits and pip size per symbol, so clients show prices and pips like the server computes them."""
    return {
        name: {
            "digits": spec.digits,
            "pip_size": spec.pip_size,
            "min_lot": spec.min_lot,
            "lot_step": spec.lot_step,
        }
        for name, spec in copilot.services.specs.items()
    }


@router.get("/quote/{symbol}", response_model=Quote)
async def get_quote(symbol: str, user: CurrentUser, copilot: CopilotDep) -> Quote:
    """Bid/ask now (replay or platform time), to place SL/TP sensibly before asking for a trade."""
    name = symbol.upper()
    if name not in copilot.services.specs:
        raise HTTPException(
            404, f"unknown symbol {symbol!r}; known: {', '.join(sorted(copilot.services.specs))}"
        )
    return await copilot.services.market.get_quote(name)
