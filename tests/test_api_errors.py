"""Failures inside a run reach the client as short JSON or an SSE error event, never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from config import Settings
from server.app import create_app
from tests.support.serving import serve_app

SECRET = "internal detail /srv/secret/path.py line 42"


class ExplodingCopilot:
    """Stands in for the facade only to make it fail; the server code under test is all real."""

    services = SimpleNamespace(broker=None, alerts=None)  # nothing for the server's ticker to check

    async def chat(self, *args: Any) -> Any:
        raise RuntimeError(SECRET)

    async def stream(self, *args: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"event": "node", "data": {"node": "load_context"}}
        raise RuntimeError(SECRET)

    async def model_status(self) -> str:
        return "ok"


def test_unexpected_failures_are_reported_without_internals(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, copilot=ExplodingCopilot())  # type: ignore[arg-type]
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = client.post("/api/chat", json={"message": "hola", "session_id": "s1"})
        assert response.status_code == 500
        detail = response.json()["detail"]
        assert detail.startswith("internal error (ref ") and SECRET not in response.text
        assert "Traceback" not in response.text

        stream = client.post("/api/chat/stream", json={"message": "hola", "session_id": "s1"})
        assert stream.status_code == 200
        assert stream.text.startswith("event: node")  # the stream had started before the failure
        assert "event: error" in stream.text and SECRET not in stream.text

        # The session lock was released both times: the next run is not refused as busy.
        again = client.post("/api/chat", json={"message": "hola", "session_id": "s1"})
        assert again.status_code == 500

        metrics = client.get("/metrics").text
        assert 'copilot_http_requests_total{method="POST",route="/api/chat",status="500"} 2.0' in metrics

        unknown = client.get("/api/nothing-here")
        assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
