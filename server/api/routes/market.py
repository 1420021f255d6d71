"""What the page draws: candles up to the market clock's now, the governing signal, the limits in force."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from config.values import Timeframe
from server.api.deps import CurrentUser, KnownSymbol, ServicesDep, SettingsDep
from server.api.responses import READ, SYMBOL
from tools.protocols import ServiceError, UnknownSymbolError
from tools.schemas import Signal

router = APIRouter(prefix="/api", tags=["market"])

MAX_CHART_BARS = 2000


class Candle(BaseModel):
    """One bar for a chart: `time` is its open time in UTC epoch seconds."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Candles(BaseModel):
    symbol: str
    timeframe: Timeframe
    now: datetime  # the market clock's now: no bar after it is ever returned
    bars: list[Candle]


class TradingLimits(BaseModel):
    """What the risk gate enforces, so a client can estimate a proposal before the gate decides."""

    leverage: float
    max_risk_per_trade_pct: float
    min_risk_reward: float
    min_confidence: float
    max_price_drift_pct: float
    signal_timeframe: Timeframe
    proposal_ttl_seconds: int


@router.get("/bars/{symbol}", response_model=Candles, responses=SYMBOL)
async def get_bars(
    user: CurrentUser,
    name: KnownSymbol,
    services: ServicesDep,
    timeframe: Timeframe = "15m",
    bars: Annotated[int, Query(ge=1, le=MAX_CHART_BARS)] = 300,
) -> Candles:
    """OHLCV candles, oldest first, closed by the market clock's now (replay or platform time)."""
    try:
        rows = await services.market.get_bars(name, timeframe, bars)
    except UnknownSymbolError as exc:
        raise HTTPException(404, str(exc)) from None
    candles = [
        Candle(
            time=int(b.time.timestamp()), open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume
        )
        for b in rows
    ]
    return Candles(symbol=name, timeframe=timeframe, now=services.clock.now(), bars=candles)


@router.get("/signal/{symbol}", response_model=Signal, responses=SYMBOL)
async def get_governing_signal(
    user: CurrentUser, name: KnownSymbol, services: ServicesDep, settings: SettingsDep
) -> Signal:
    """The signal the risk gate checks now (always on `risk.signal_timeframe`), whatever was asked in chat."""
    try:
        return await services.signals.get_signal(name, settings.risk.signal_timeframe)
    except ServiceError as exc:
        raise HTTPException(502, f"no signal for {name}: {exc}") from None


@router.get("/limits", response_model=TradingLimits, responses=READ)
async def get_limits(user: CurrentUser, settings: SettingsDep) -> TradingLimits:
    """The risk limits in force and the broker's leverage (for margin estimates)."""
    risk = settings.risk
    return TradingLimits(
        leverage=settings.broker.leverage,
        max_risk_per_trade_pct=risk.max_risk_per_trade_pct,
        min_risk_reward=risk.min_risk_reward,
        min_confidence=risk.min_confidence,
        max_price_drift_pct=risk.max_price_drift_pct,
        signal_timeframe=risk.signal_timeframe,
        proposal_ttl_seconds=risk.proposal_ttl_seconds,
    )
