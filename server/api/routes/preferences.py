"""The trader's preferences: GET (defaults filled in) and PUT (any subset) /api/preferences.

The models carry this configuration's bounds (its symbols, `risk.max_risk_per_trade_pct`: see
tools.preferences), so the router is built per settings and the OpenAPI document states exactly what is
accepted. No `from __future__ import annotations` here: FastAPI reads the body's type, built at run time,
from the signature.
"""

from fastapi import APIRouter

from config import Settings
from server.api.deps import CopilotDep, CurrentUser
from server.api.responses import READ, UNPARSABLE
from tools.preferences import Preferences, models_for

PUT_DOC = """Change any subset of your preferences; the fields left out stay as they are, and `null` puts one
back to its default. Anything out of bounds (a risk above the server's cap, non-finite or not positive; an
unknown symbol or timeframe), of the wrong type or unknown is a 422 naming the field, and nothing is stored.
Your risk per trade sizes the trades proposed to you from then on (a preference can tighten the cap, never
loosen it); the language is the one the copilot answers in; symbol and timeframe are where a new session
starts; notify says which notices are pushed to you."""


def preferences_router(settings: Settings) -> APIRouter:
    models = models_for(settings)
    View, Update = models.view, models.update
    router = APIRouter(prefix="/api", tags=["preferences"])

    @router.get("/preferences", response_model=View, responses=READ)
    async def get_preferences(user: CurrentUser, copilot: CopilotDep) -> Preferences:
        """Your preferences, each one you never set at its default (the risk: the server's cap)."""
        return await copilot.prefs.get(user)

    @router.put("/preferences", response_model=View, responses={**READ, **UNPARSABLE}, description=PUT_DOC)
    async def put_preferences(body: Update, user: CurrentUser, copilot: CopilotDep) -> Preferences:  # type: ignore[valid-type]
        """Change some of your preferences; the answer is all of them, as now stored."""
        return await copilot.prefs.update(user, body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]

    return router
