"""HttpSignalSource: the platform ML engine's `/api/signal` and `/api/analysis` as a SignalSource."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tools.http import ServiceClient
from tools.protocols import ServiceError
from tools.schemas import Analysis, Signal

SERVICE_NAME = "ML engine"
M = TypeVar("M", bound=BaseModel)

DEFAULT_SOURCE = "ml_engine"  # the seed's engine does not name itself; an absent source means it


class HttpSignalSource:
    """SignalSource over HTTP; timeouts/retries from settings.tools, errors as ServiceError."""

    def __init__(self, base_url: str, timeout: float = 30.0, retries: int = 3) -> None:
        self._client = ServiceClient(base_url, SERVICE_NAME, timeout=timeout, retries=retries)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_signal(self, symbol: str, timeframe: str = "5m") -> Signal:
        body = await self._client.get("/api/signal", {"symbol": symbol, "timeframe": timeframe})
        return _parse(Signal, body, f"signal for {symbol}")

    async def analyze(self, symbol: str) -> Analysis:
        body = await self._client.get("/api/analysis", {"symbol": symbol})
        if isinstance(body, dict):
            signals = body.get("recent_signals")
            if isinstance(signals, list):
                body = {**body, "recent_signals": [_with_source(s) for s in signals]}
        return _parse(Analysis, body, f"analysis for {symbol}")


def _with_source(item: Any) -> Any:
    if isinstance(item, dict) and not item.get("source"):
        return {**item, "source": DEFAULT_SOURCE}
    return item


def _parse(model: type[M], body: Any, what: str) -> M:
    if not isinstance(body, dict):
        raise ServiceError(
            f"{SERVICE_NAME} sent a malformed {what}: expected a JSON object, got {type(body).__name__}"
        )
    try:
        return model.model_validate(_with_source(body))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise ServiceError(f"{SERVICE_NAME} sent a malformed {what} ({problems})") from None
