"""Shared fixtures: one real embedded Redis Stack per test session, the shared market data, settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from config import Settings, load_settings
from server.in_thread import free_port, serve_in_thread
from server.redis_embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` holds the real XAUUSD/EURUSD history; the suite needs it."""
    if not (SHARED_DATA / "XAUUSD_M1.csv.gz").is_file():
        pytest.fail(f"real market data not found at {SHARED_DATA} (expected XAUUSD_M1.csv.gz)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix() -> str:
    """A fresh key prefix per test, so tests sharing the server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def settings(redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path) -> Settings:
    return load_settings(
        redis_url=redis_url,
        redis={"prefix": key_prefix},
        data_dir=str(tmp_path / "data"),
        fallback_data_dir=str(shared_data),
        logging={"file": None},
    )


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def serve_app(app: object, port: int | None = None) -> AbstractContextManager[str]:
    """Run an ASGI app under a real uvicorn server in a thread; yields its base URL."""
    return serve_in_thread(app, port, startup_seconds=15)
