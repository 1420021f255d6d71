"""MarketData over the platform data service (`GET /api/market_data`), for when services.data_url is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tools.http import ServiceClient
from tools.market.specs import spec_for
from tools.protocols import Clock, ServiceError
from tools.schemas import TIMEFRAME_MINUTES, Bar, Quote, SymbolSpec

MAX_BARS_PER_CALL = 5000


def parse_bar_time(value: Any) -> datetime:
    """The service's bar time: '2024-12-08 10:00' (the seed's example) or ISO 8601; naive means UTC."""
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ServiceError(f"data service sent an unreadable bar time {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class HttpMarketData:
    """Bars from the data service; the quote is the last 1m close plus the configured spread."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        retries: int,
        specs: dict[str, SymbolSpec],
        clock: Clock | None = None,
    ) -> None:
        self.specs = specs
        self.clock = clock
        self._client = ServiceClient(base_url, "data service", timeout=timeout, retries=retries)

    async def aclose(self) -> None:
        await self._client.aclose()

    def symbols(self) -> list[str]:
        return sorted(self.specs)

    async def get_bars(self, symbol: str, timeframe: str = "5m", bars: int = 100) -> list[Bar]:
        spec = spec_for(self.specs, symbol)
        if timeframe not in TIMEFRAME_MINUTES:
            raise ServiceError(f"unknown timeframe '{timeframe}'; use one of {', '.join(TIMEFRAME_MINUTES)}")
        body = await self._client.get(
            "/api/market_data", {"symbol": spec.symbol, "timeframe": timeframe, "bars": bars}
        )
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise ServiceError("data service answered without a 'data' list")
        try:
            return [Bar(**{**row, "time": parse_bar_time(row["time"])}) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceError(f"data service sent a malformed bar ({exc})") from None

    async def get_quote(self, symbol: str) -> Quote:
        spec = spec_for(self.specs, symbol)
        last = await self.get_bars(spec.symbol, "1m", 1)
        if not last:
            raise ServiceError(f"data service has no {spec.symbol} bars")
        bid = spec.round_price(last[-1].close)
        ask = spec.round_price(bid + spec.spread_pips * spec.pip_size)
        return Quote(symbol=spec.symbol, time=last[-1].time + timedelta(minutes=1), bid=bid, ask=ask)

    async def bars_since(self, symbol: str, since: datetime) -> list[Bar]:
        """1m bars still open at `since` or opened after it (the service only serves closed history)."""
        now = self.clock.now() if self.clock else datetime.now(UTC)
        minutes = int((now - since).total_seconds() // 60) + 2
        bars = await self.get_bars(symbol, "1m", max(1, min(minutes, MAX_BARS_PER_CALL)))
        return [bar for bar in bars if bar.time + timedelta(minutes=1) > since]
