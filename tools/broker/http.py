"""Clients of the platform's trading service (`/api/trade`, `/api/portfolio`, `/api/alerts`, positions)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tools.http import ServiceClient
from tools.protocols import ServiceError
from tools.schemas import Alert, AlertRequest, OrderRequest, OrderResult, Portfolio


class HttpBroker:
    """Broker protocol over HTTP. Every state-changing POST carries the Idempotency-Key header, so
    ServiceClient may retry it after a dropped connection without risking a second order."""

    def __init__(self, base_url: str, timeout: float = 30.0, retries: int = 3, account_id: str | None = None):
        self._client = ServiceClient(base_url, "trading service", timeout=timeout, retries=retries)
        self.account_id = account_id

    async def aclose(self) -> None:
        await self._client.aclose()

    async def place_order(self, order: OrderRequest, idempotency_key: str) -> OrderResult:
        _require_key(idempotency_key)
        if order.account_id is None and self.account_id is not None:
            order = order.model_copy(update={"account_id": self.account_id})
        body = await self._client.post("/api/trade", order.model_dump(mode="json"), idempotency_key)
        return OrderResult.model_validate(body)

    async def close_position(
        self, ticket: int, idempotency_key: str, account_id: str | None = None
    ) -> OrderResult:
        _require_key(idempotency_key)
        body = {"account_id": account_id or self.account_id}
        answer = await self._client.post(f"/api/positions/{ticket}/close", body, idempotency_key)
        return OrderResult.model_validate(answer)

    async def modify_position(
        self,
        ticket: int,
        *,
        stop_loss: float | None,
        take_profit: float | None,
        idempotency_key: str,
        account_id: str | None = None,
    ) -> OrderResult:
        _require_key(idempotency_key)
        body = {
            "stop_loss": stop_loss,
            "take_profit": take_profit,
            "account_id": account_id or self.account_id,
        }
        answer = await self._client.post(f"/api/positions/{ticket}/modify", body, idempotency_key)
        return OrderResult.model_validate(answer)

    async def get_portfolio(self, account_id: str | None = None) -> Portfolio:
        body = await self._client.get("/api/portfolio", {"account_id": account_id or self.account_id})
        return Portfolio.model_validate(body)

    async def find_order(self, idempotency_key: str, account_id: str | None = None) -> OrderResult | None:
        _require_key(idempotency_key)
        params = {"account_id": account_id or self.account_id}
        body = await self._client.get(f"/api/orders/{quote(idempotency_key, safe='')}", params)
        return None if body is None else OrderResult.model_validate(body)


class HttpAlerts:
    """AlertService over HTTP. Creating an alert is not idempotent, so its POST is never retried."""

    def __init__(self, base_url: str, timeout: float = 30.0, retries: int = 3, account_id: str | None = None):
        self._client = ServiceClient(base_url, "trading service", timeout=timeout, retries=retries)
        self.account_id = account_id

    async def aclose(self) -> None:
        await self._client.aclose()

    async def set_alert(
        self, alert: AlertRequest, account_id: str | None = None, key: str | None = None
    ) -> Alert:
        account = account_id or self.account_id
        # The seed's body has no account field; the account travels as a query parameter, as on GET.
        path = "/api/alerts" + (f"?{urlencode({'account_id': account})}" if account else "")
        body = alert.model_dump(mode="json")
        return Alert.model_validate(await self._client.post(path, body, idempotency_key=key))

    async def list_alerts(self, account_id: str | None = None) -> list[Alert]:
        body = await self._client.get("/api/alerts", {"account_id": account_id or self.account_id})
        return [Alert.model_validate(a) for a in body]


def _require_key(key: str) -> None:
    if not key or not key.strip():
        raise ServiceError("an idempotency key is required for every order, close and modify")
