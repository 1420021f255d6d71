"""What the in-process benches share: the copilot's services on a private embedded Redis Stack."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from config import Settings, load_settings
from server.in_thread import free_port
from server.redis_embedded import EmbeddedRedis
from tools.protocols import Clock
from tools.services import Services, build_services

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@asynccontextmanager
async def private_services(
    clock: Clock, **overrides: Any
) -> AsyncIterator[tuple[Settings, aioredis.Redis, Services]]:
    """Settings on a fresh embedded Redis Stack (its data and the market's in a temporary folder, the shared
    history as the fallback; `overrides`: more settings sections, e.g. llm=...), a client on it and the
    copilot's services on `clock`; all gone afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(port=free_port(), data_dir=Path(tmp))
        server.start()
        try:
            settings = load_settings(
                redis_url=server.url,
                data_dir=str(Path(tmp) / "data"),
                fallback_data_dir=str(SHARED_DATA),
                logging={"file": None},
                **overrides,
            )
            redis = aioredis.from_url(server.url, decode_responses=True)
            services = await build_services(settings, redis, clock)
            try:
                yield settings, redis, services
            finally:
                await services.aclose()
                await redis.aclose()
        finally:
            server.stop()
