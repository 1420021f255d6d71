"""One small JSON-over-HTTP client for the platform services, with timeout and retry from settings."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import JsonValue

from tools.protocols import ServiceError

RETRYABLE_STATUS = {502, 503, 504}


class ServiceClient:
    """GET/POST JSON to one platform service. Retries connection errors and 502/503/504 only.

    POSTs are retried only when they carry an idempotency key, so a retry can never place a second order.
    """

    def __init__(self, base_url: str, name: str, timeout: float = 30.0, retries: int = 3) -> None:
        self.name = name
        self.retries = retries
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, str | int | float | None] | None = None) -> Any:
        """The decoded JSON answer; parameters that are None are left out of the query."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return await self._send("GET", path, params=clean, retry=True)

    async def post(self, path: str, body: Mapping[str, JsonValue], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._send("POST", path, json=body, headers=headers, retry=idempotency_key is not None)

    async def _send(self, method: str, path: str, retry: bool, **kwargs: Any) -> Any:
        attempts = 1 + (self.retries if retry else 0)
        last = ""
        for attempt in range(attempts):
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                last = f"{self.name} did not answer within {self._client.timeout.read}s"
            except httpx.TransportError as exc:
                last = f"{self.name} is unreachable at {self._client.base_url} ({type(exc).__name__})"
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    return _json_or_error(self.name, response)
                last = f"{self.name} answered {response.status_code}"
            if attempt + 1 < attempts:
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
        raise ServiceError(last)


def _json_or_error(name: str, response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise ServiceError(f"{name} answered {response.status_code} with a non-JSON body") from None
    if response.is_error:
        detail = body.get("detail") if isinstance(body, dict) else None
        raise ServiceError(f"{name}: {detail or response.reason_phrase} ({response.status_code})")
    return body
