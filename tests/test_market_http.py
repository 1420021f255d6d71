"""The /api/market_data contract over real HTTP: HttpMarketData against api.router over CsvMarketData."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from config import Settings
from tests.support.serving import serve_app
from tools.market.api import router
from tools.market.clock import ManualClock, ReplayClock
from tools.market.csv_import import import_csv, list_data
from tools.market.csv_store import CsvMarketData
from tools.market.factory import build_market, data_files, load_history
from tools.market.http import HttpMarketData
from tools.market.specs import load_specs
from tools.protocols import ServiceError, UnknownSymbolError

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def eurusd_store(shared_data: Path) -> CsvMarketData:
    from config import load_settings

    store = CsvMarketData(load_specs(load_settings()), ManualClock(datetime(2018, 1, 10, 12, tzinfo=UTC)))
    store.load_file(shared_data / "EURUSD_H1.csv.gz")
    return store


async def test_http_client_matches_the_embedded_store(eurusd_store: CsvMarketData) -> None:
    app = FastAPI()
    app.include_router(router(eurusd_store))
    with serve_app(app) as url:
        client = HttpMarketData(url, timeout=5, retries=0, specs=eurusd_store.specs)
        try:
            remote = await client.get_bars("eurusd", "4h", 20)
            assert remote == await eurusd_store.get_bars("EURUSD", "4h", 20)
            with pytest.raises(UnknownSymbolError):
                await client.get_bars("XAUUSDX", "1h", 5)
            with pytest.raises(ServiceError, match="cannot give 1m"):
                await client.get_quote("EURUSD")  # the quote needs 1m bars; the service has 1h
            async with httpx.AsyncClient(base_url=url) as raw:
                not_found = await raw.get("/api/market_data", params={"symbol": "BTCUSD"})
                assert (
                    not_found.status_code == 404 and "unknown symbol 'BTCUSD'" in not_found.json()["detail"]
                )
                bad = await raw.get("/api/market_data", params={"symbol": "EURUSD", "bars": 0})
                assert bad.status_code == 422
                body = (
                    await raw.get(
                        "/api/market_data", params={"symbol": "EURUSD", "timeframe": "1h", "bars": 2}
                    )
                ).json()
                assert body["symbol"] == "EURUSD" and body["data"][-1]["time"] == "2018-01-10 11:00"
        finally:
            await client.aclose()


@pytest.fixture
def eurusd_data_dir(settings: Settings, shared_data: Path) -> Path:
    assert data_files(settings) == sorted(shared_data.glob("*.csv.gz"))  # empty data_dir -> the shared data
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / "EURUSD_H1.csv.gz").symlink_to(shared_data / "EURUSD_H1.csv.gz")  # real data, not a copy
    return data_dir


async def test_factory_uses_data_dir_with_replay_clock(
    settings: Settings, redis_client: aioredis.Redis, eurusd_data_dir: Path, tmp_path: Path
) -> None:
    only_data_dir = settings.model_copy(update={"fallback_data_dir": str(tmp_path / "none")})
    assert data_files(only_data_dir) == [eurusd_data_dir / "EURUSD_H1.csv.gz"]
    market, clock = await build_market(only_data_dir, redis_client)
    assert isinstance(clock, ReplayClock) and isinstance(market, CsvMarketData)
    assert market.symbols() == ["EURUSD"]
    # "auto" starts 30 days before the end of the loaded history (last bar 2018-02-07 15:00 closes 16:00).
    assert clock.history_anchor == datetime(2018, 1, 8, 16, 0, tzinfo=UTC)
    quote = await market.get_quote("EURUSD")
    assert quote.ask == round(quote.bid + 0.8 * 0.0001, 5)


def test_importing_one_symbol_keeps_the_shared_history_of_the_others(
    settings: Settings, shared_data: Path, tmp_path: Path
) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text(
        "datetime,open,high,low,close,volume\n"
        "2026-01-05 10:00:00,4400.10,4402.00,4399.50,4401.20,10\n"
        "2026-01-05 11:00:00,4401.20,4405.00,4400.00,4404.80,12\n"
    )
    import_csv(gold, "XAUUSD", Path(settings.data_dir), False, load_specs(settings))
    own = Path(settings.data_dir) / "XAUUSD_H1.csv.gz"
    # The imported XAUUSD replaces the shared one; the shared EURUSD is still there.
    assert data_files(settings) == [own, shared_data / "EURUSD_H1.csv.gz"]
    market = load_history(settings)
    assert market.symbols() == ["EURUSD", "XAUUSD"]
    assert market.bar_count("XAUUSD") == 2 and market.source("EURUSD") == shared_data / "EURUSD_H1.csv.gz"
    listed = list_data(settings)
    assert any(line.split()[0] == "EURUSD" and line.endswith("(fallback)") for line in listed[1:])
    assert any(line.split()[0] == "XAUUSD" and line.endswith(str(own)) for line in listed[1:])


async def test_factory_without_any_data(
    settings: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    empty = settings.model_copy(update={"fallback_data_dir": str(tmp_path / "none")})
    with pytest.raises(ServiceError, match="no market data"):
        await build_market(empty, redis_client, ManualClock(NOW))
