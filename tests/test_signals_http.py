"""Contract: HttpSignalSource against api.router(TechnicalEngine) under uvicorn; failures as ServiceError."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from config import load_settings
from tests.support.serving import serve_app
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs
from tools.protocols import ServiceError
from tools.signals.api import router
from tools.signals.factory import build_signals
from tools.signals.http import HttpSignalSource
from tools.signals.technical import TechnicalEngine

T = datetime(2026, 4, 15, 13, 40, tzinfo=UTC)  # 09:40 EDT, inside the NY AM killzone


@pytest.fixture(scope="module")
def engine(shared_data: Path) -> TechnicalEngine:
    specs = load_specs(load_settings())
    clock = ManualClock(T)
    market = CsvMarketData(specs, clock)
    market.load_file(shared_data / "XAUUSD_M1.csv.gz")
    return TechnicalEngine(market, clock, specs)


def app_with(routes: dict[str, Any]) -> FastAPI:
    """A tiny stand-in ML engine answering /api/signal and /api/analysis with the given handlers."""
    app = FastAPI()
    for path, handler in routes.items():
        app.add_api_route(path, handler, methods=["GET"])
    return app


async def test_same_signal_and_analysis_over_http_as_in_process(engine: TechnicalEngine) -> None:
    app = FastAPI()
    app.include_router(router(engine))
    with serve_app(app) as url:
        client = HttpSignalSource(url, timeout=10, retries=0)
        try:
            for timeframe in ("5m", "15m", "1h"):
                assert await client.get_signal("XAUUSD", timeframe) == await engine.get_signal(
                    "XAUUSD", timeframe
                )
            remote = await client.analyze("XAUUSD")
            assert remote == await engine.analyze("XAUUSD")
            assert remote.source == "technical_engine"  # a named source is kept, not replaced by the default
            assert remote.ict_context.killzone == "ny_am"
            with pytest.raises(ServiceError, match=r"Unknown symbol.*\(404\)"):
                await client.get_signal("DOGEUSD")
        finally:
            await client.aclose()


async def test_source_defaults_to_ml_engine_and_malformed_bodies_are_refused() -> None:
    async def signal(symbol: str, timeframe: str = "5m") -> Any:
        if symbol == "BAD":
            return {"symbol": symbol, "confidence": 1.7}  # no action, confidence out of range
        if symbol == "LIST":
            return [1, 2]
        return {
            "symbol": symbol,
            "timeframe": timeframe,
            "action": "LONG",
            "confidence": 0.8,
            "entry_price": 4000.5,
        }

    async def analysis(symbol: str) -> Any:
        return {
            "symbol": symbol,
            "current_price": 4000.0,
            "recent_signals": [{"symbol": symbol, "action": "HOLD", "confidence": 0.1}],
        }

    with serve_app(app_with({"/api/signal": signal, "/api/analysis": analysis})) as url:
        client = HttpSignalSource(url, timeout=5, retries=0)
        try:
            good = await client.get_signal("XAUUSD", "15m")
            assert (good.source, good.action, good.timeframe, good.entry_price) == (
                "ml_engine",
                "LONG",
                "15m",
                4000.5,
            )
            result = await client.analyze("XAUUSD")
            assert result.source == "ml_engine" and result.recent_signals[0].source == "ml_engine"
            with pytest.raises(ServiceError, match=r"malformed signal for BAD \(action: Field required"):
                await client.get_signal("BAD")
            with pytest.raises(ServiceError, match="expected a JSON object, got list"):
                await client.get_signal("LIST")
        finally:
            await client.aclose()


async def test_server_errors_and_timeouts_become_service_errors() -> None:
    calls = {"n": 0}

    async def broken(symbol: str) -> JSONResponse:
        calls["n"] += 1
        return JSONResponse({"detail": "model not loaded"}, status_code=500)

    async def slow(symbol: str) -> dict[str, Any]:
        await asyncio.sleep(0.8)
        return {"symbol": symbol, "current_price": 1.0}

    with serve_app(app_with({"/api/signal": broken, "/api/analysis": slow})) as url:
        client = HttpSignalSource(url, timeout=0.3, retries=0)
        try:
            with pytest.raises(ServiceError, match=r"ML engine: model not loaded \(500\)"):
                await client.get_signal("XAUUSD")
            assert calls["n"] == 1  # a 500 is an answer, not a transport failure: not retried
            with pytest.raises(ServiceError, match=r"did not answer within 0\.3s"):
                await client.analyze("XAUUSD")
        finally:
            await client.aclose()


def test_factory_picks_http_when_the_ml_engine_url_is_set(engine: TechnicalEngine) -> None:
    embedded = build_signals(load_settings(), engine.market, engine.clock, engine.specs)
    assert isinstance(embedded, TechnicalEngine)
    remote = build_signals(
        load_settings(services={"ml_engine_url": "http://127.0.0.1:9"}),
        engine.market,
        engine.clock,
        engine.specs,
    )
    assert isinstance(remote, HttpSignalSource)
