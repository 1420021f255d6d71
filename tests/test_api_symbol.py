"""A session remembers its symbol over HTTP: a message without `symbol` keeps it, one with it changes it."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from tests.support.api_support import Script, api_settings, running_app
from tools.redis_embedded import EmbeddedRedis


def test_a_message_without_symbol_keeps_the_sessions_symbol(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path
) -> None:
    settings = api_settings(redis_server.url, shared_data, tmp_path)
    key = f"{settings.redis.prefix}session:local:fx-desk"
    with running_app(settings, Script()) as url, httpx.Client(base_url=url, timeout=60) as client:
        with redis.Redis.from_url(redis_server.url, decode_responses=True) as r:
            first = client.post(
                "/api/chat", json={"message": "hola", "session_id": "fx-desk", "symbol": "eurusd"}
            )
            assert first.status_code == 200 and r.hget(key, "symbol") == "EURUSD"
            second = client.post("/api/chat", json={"message": "¿y ahora?", "session_id": "fx-desk"})
            assert second.status_code == 200 and r.hget(key, "symbol") == "EURUSD"  # not reset to XAUUSD
            client.post("/api/chat", json={"message": "oro", "session_id": "fx-desk", "symbol": "XAUUSD"})
            assert r.hget(key, "symbol") == "XAUUSD"
