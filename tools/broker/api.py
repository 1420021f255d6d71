"""The trading service HTTP contract (trade, portfolio, alerts, positions) served over any Broker."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Header, HTTPException
from pydantic import BaseModel

from tools.protocols import AlertService, Broker, ServiceError, UnknownSymbolError
from tools.schemas import Alert, AlertRequest, OrderRequest, OrderResult, Portfolio

T = TypeVar("T")
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class CloseRequest(BaseModel):
    account_id: str | None = None


class ModifyRequest(BaseModel):
    stop_loss: float | None = None
    take_profit: float | None = None
    account_id: str | None = None


def _key(value: str | None) -> str:
    if not value or not value.strip():
        raise HTTPException(400, "missing Idempotency-Key header: every order, close and modify needs one")
    return value.strip()


async def _call(awaitable: Awaitable[T]) -> T:
    """Service refusals become JSON errors with the service's own message (never a retryable 5xx)."""
    try:
        return await awaitable
    except UnknownSymbolError as exc:
        raise HTTPException(404, str(exc)) from None
    except ServiceError as exc:
        raise HTTPException(400, str(exc)) from None


def router(broker: Broker, alerts: AlertService) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["trading"])

    @api.post("/trade")
    async def trade(order: OrderRequest, idempotency_key: IdempotencyKey = None) -> OrderResult:
        return await _call(broker.place_order(order, _key(idempotency_key)))

    @api.post("/positions/{ticket}/close")
    async def close(ticket: int, body: CloseRequest, idempotency_key: IdempotencyKey = None) -> OrderResult:
        return await _call(broker.close_position(ticket, _key(idempotency_key), body.account_id))

    @api.post("/positions/{ticket}/modify")
    async def modify(ticket: int, body: ModifyRequest, idempotency_key: IdempotencyKey = None) -> OrderResult:
        key = _key(idempotency_key)
        return await _call(
            broker.modify_position(
                ticket,
                stop_loss=body.stop_loss,
                take_profit=body.take_profit,
                idempotency_key=key,
                account_id=body.account_id,
            )
        )

    @api.get("/orders/{idempotency_key}")
    async def order(idempotency_key: str, account_id: str | None = None) -> OrderResult | None:
        """What was done under this Idempotency-Key, or null: lets a client that lost a reply reconcile."""
        return await _call(broker.find_order(idempotency_key, account_id))

    @api.get("/portfolio")
    async def portfolio(account_id: str | None = None) -> Portfolio:
        return await _call(broker.get_portfolio(account_id))

    @api.post("/alerts")
    async def set_alert(
        alert: AlertRequest, account_id: str | None = None, idempotency_key: IdempotencyKey = None
    ) -> Alert:
        """Create a price alert; under an Idempotency-Key, once (the same key answers the first alert)."""
        return await _call(alerts.set_alert(alert, account_id, idempotency_key))

    @api.get("/alerts")
    async def list_alerts(account_id: str | None = None) -> list[Alert]:
        return await _call(alerts.list_alerts(account_id))

    return api
