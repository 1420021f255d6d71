"""The platform data service contract, `GET /api/market_data`, served over any MarketData."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, PlainSerializer

from config.values import Timeframe
from tools.protocols import MarketData, ServiceError, UnknownSymbolError
from tools.schemas import Bar

MAX_BARS = 5000


class SeedBar(Bar):
    """A bar as the seed's data service sends it: `time` (open, UTC) as 'YYYY-MM-DD HH:MM'."""

    time: Annotated[datetime, PlainSerializer(lambda t: t.strftime("%Y-%m-%d %H:%M"), return_type=str)]


class MarketDataReply(BaseModel):
    """The seed's `GET /api/market_data` answer."""

    symbol: str
    timeframe: Timeframe
    data: list[SeedBar]


def router(market: MarketData) -> APIRouter:
    api = APIRouter()

    @api.get("/api/market_data")
    async def market_data(
        symbol: Annotated[str, Query(min_length=1, max_length=20)],
        timeframe: Timeframe = "5m",
        bars: Annotated[int, Query(ge=1, le=MAX_BARS)] = 100,
    ) -> MarketDataReply:
        """OHLCV bars, oldest first; `time` is the bar's open time in UTC ('YYYY-MM-DD HH:MM')."""
        try:
            rows = await market.get_bars(symbol, timeframe, bars)
        except UnknownSymbolError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        except ServiceError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return MarketDataReply(
            symbol=symbol.strip().upper(),
            timeframe=timeframe,
            data=[SeedBar(**bar.model_dump()) for bar in rows],
        )

    return api
