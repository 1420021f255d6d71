"""Request dependencies as `Annotated` aliases, so handlers read like prose: CurrentUser, CopilotDep, ..."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from config import Settings
from graph.copilot import Copilot
from graph.threads import ID_PATTERN, account_for
from server.api.runs import Runner, RunRegistry
from server.metrics import Metrics
from tools.locks import Leases
from tools.services import Services

LOCAL_USER = "local"
SESSION_ID_PATTERN = ID_PATTERN


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_copilot(request: Request) -> Copilot:
    copilot = getattr(request.app.state, "copilot", None)
    if copilot is None:
        # Retry-After as for Redis being away (server.app): starting takes a few seconds.
        raise HTTPException(
            503, "the copilot is starting or stopped; retry in a moment", headers={"Retry-After": "2"}
        )
    return copilot


def get_locks(request: Request) -> Leases:
    return request.app.state.locks


def get_runs(request: Request) -> RunRegistry:
    return request.app.state.runs


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def bearer_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def presented_key(request: Request) -> str | None:
    return request.headers.get("x-api-key") or bearer_token(request)


def user_for_key(api_keys: dict[str, str], key: str | None) -> str | None:
    """The user owning `key`; compares every key in constant time so timing reveals nothing."""
    found = None
    for known, user in api_keys.items():
        if key is not None and hmac.compare_digest(known.encode(), key.encode()):
            found = user
    return found


def get_current_user(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> str:
    api_keys = settings.server.api_keys
    if not api_keys:
        return LOCAL_USER
    key = presented_key(request)
    if key is None:
        raise HTTPException(401, "an API key is required: send it as X-API-Key or Authorization: Bearer")
    user = user_for_key(api_keys, key)
    if user is None:
        raise HTTPException(401, "this API key is not valid; check the key configured for you")
    return user


def require_metrics_key(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """/metrics: open in local single-user mode without server.metrics_key; otherwise only that key (as a
    Prometheus bearer token, or X-API-Key) reads it. A user's key never does: the counts are process-wide."""
    expected = settings.server.metrics_key
    if expected is None and not settings.server.api_keys:
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if expected is None:
        raise HTTPException(
            401, "metrics are off: set server.metrics_key and scrape with it", headers=challenge
        )
    offered = [request.headers.get("x-api-key"), bearer_token(request)]
    if not any(key and hmac.compare_digest(expected.encode(), key.encode()) for key in offered):
        raise HTTPException(401, "metrics need server.metrics_key as a bearer token", headers=challenge)


def get_services(copilot: Annotated[Copilot, Depends(get_copilot)]) -> Services:
    """The copilot's services (market data, signals, broker): what the read-only routes show."""
    return copilot.services


def get_account(user: Annotated[str, Depends(get_current_user)]) -> str:
    """The broker account of the request's user."""
    return account_for(user)


def known_symbol(symbol: str, services: Annotated[Services, Depends(get_services)]) -> str:
    """The path's symbol, upper-cased; 404 naming the known ones when it is not traded here."""
    name = symbol.strip().upper()
    if name not in services.specs:
        raise HTTPException(404, f"unknown symbol {symbol!r}; known: {', '.join(sorted(services.specs))}")
    return name


def get_runner(
    user: Annotated[str, Depends(get_current_user)],
    copilot: Annotated[Copilot, Depends(get_copilot)],
    runs: Annotated[RunRegistry, Depends(get_runs)],
) -> Runner:
    return Runner(user, copilot, runs)


SettingsDep = Annotated[Settings, Depends(get_settings)]
CopilotDep = Annotated[Copilot, Depends(get_copilot)]
LocksDep = Annotated[Leases, Depends(get_locks)]
RunsDep = Annotated[RunRegistry, Depends(get_runs)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
MetricsReader = Depends(require_metrics_key)
CurrentUser = Annotated[str, Depends(get_current_user)]
ServicesDep = Annotated[Services, Depends(get_services)]
AccountDep = Annotated[str, Depends(get_account)]
KnownSymbol = Annotated[str, Depends(known_symbol)]
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="the session (conversation) id")]
