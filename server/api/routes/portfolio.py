"""The current user's paper (or platform) account: GET /api/portfolio."""

from __future__ import annotations

from fastapi import APIRouter

from graph.copilot import account_for
from server.api.deps import CopilotDep, CurrentUser
from tools.schemas import Portfolio

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
