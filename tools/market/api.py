"""The platform data service contract, `GET /api/market_data`, served over any MarketData."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from tools.protocols import MarketData, ServiceError, UnknownSymbolError
from tools.schemas import Timeframe

MAX_BARS = 5000


def router(market: MarketData) -> APIRouter:
    api = APIRouter()

    @api.get("/api/market_data")
    async def market_data(
        symbol: Annotated[str, Query(min_length=1, max_length=20)],
        timeframe: Timeframe = "5m",
        bars: Annotated[int, Query(ge=1, le=MAX_BARS)] = 100,
    ) -> dict[str, Any]:
        """OHLCV bars, oldest first; `time` is the bar's open time in UTC ('YYYY-MM-DD HH:MM')."""
        try:
            rows = await market.get_bars(symbol, timeframe, bars)
        except UnknownSymbolError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        except ServiceError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {
            "symbol": symbol.strip().upper(),
            "timeframe": timeframe,
            "data": [
                {
                    "time": bar.time.strftime("%Y-%m-%d %H:%M"),
                    "open": bar.open,
                    "high": bar.high,
                    "low": bar.low,
                    "close": bar.close,
                    "volume": bar.volume,
                }
                for bar in rows
            ],
        }

    return api
