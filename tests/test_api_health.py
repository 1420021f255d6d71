"""Health over real HTTP with real ChatOllama: degraded (never 500) when Ollama or Redis is down."""

from __future__ import annotations

from pathlib import Path

import httpx

from server.app import create_app
from server.in_thread import free_port
from tests.support.api_support import api_settings
from tests.support.serving import serve_app
from tools.redis_embedded import EmbeddedRedis


def test_degraded_when_the_model_server_or_redis_is_down(shared_data: Path, tmp_path: Path) -> None:
    own_redis = EmbeddedRedis(port=free_port(), data_dir=tmp_path / "redis")  # ours alone, to stop it
    own_redis.start()
    # Nothing listens on that port: the model server is down. No chat model is injected (real ChatOllama).
    settings = api_settings(
        own_redis.url, shared_data, tmp_path, llm={"base_url": f"http://127.0.0.1:{free_port()}"}
    )
    try:
        with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
            health = client.get("/api/health")
            assert health.status_code == 200
            assert health.json() == {"status": "degraded", "llm_status": "down", "redis_status": "ok"}

            # Slash commands need no model, so the copilot stays usable.
            signal = client.post("/api/chat", json={"message": "/signal XAUUSD", "session_id": "s1"})
            assert signal.status_code == 200 and "get_ml_signal" in signal.json()["tools_used"]
            # Free text needs the model: the trader gets an answer saying so, not a server error.
            chat = client.post("/api/chat", json={"message": "hola", "session_id": "s1"})
            assert chat.status_code == 200, chat.text
            assert "/signal" in chat.json()["response"]  # points at what still works

            own_redis.stop()
            down = client.get("/api/health")
            assert down.status_code == 200
            assert down.json()["status"] == "degraded" and down.json()["redis_status"] == "down"
    finally:
        own_redis.stop()
