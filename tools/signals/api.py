"""The ML engine's HTTP contract (`GET /api/signal`, `GET /api/analysis`) served from any SignalSource."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from tools.protocols import ServiceError, SignalSource, UnknownSymbolError
from tools.schemas import Analysis, Signal


def router(signals: SignalSource) -> APIRouter:
    """Unknown symbol -> 404, any other service refusal -> 422, both with a `detail` a trader can read."""
    api = APIRouter(tags=["signals"])

    @api.get("/api/signal", response_model=Signal)
    async def get_signal(symbol: str, timeframe: str = "5m") -> Signal:
        try:
            return await signals.get_signal(symbol, timeframe)
        except UnknownSymbolError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ServiceError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    @api.get("/api/analysis", response_model=Analysis)
    async def get_analysis(symbol: str) -> Analysis:
        try:
            return await signals.analyze(symbol)
        except UnknownSymbolError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        except ServiceError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc

    return api
