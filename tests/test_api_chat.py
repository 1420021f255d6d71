"""Chat over real HTTP: the seed's /api/chat contract, slash and model tool calls, SSE, limits and errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_support import Script, api_settings, buy_command, error_text, running_app, sse_events
from tools.redis_embedded import EmbeddedRedis

MAX_CHARS = 500
MAX_BODY = 4096


@pytest.fixture(scope="module")
def base_url(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = api_settings(
        redis_server.url,
        shared_data,
        tmp_path_factory.mktemp("api-chat"),
        server={"max_message_chars": MAX_CHARS, "max_body_bytes": MAX_BODY},
    )
    with running_app(settings, Script()) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def test_health_is_healthy_with_redis_and_a_model(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "llm_status": "ok", "redis_status": "ok"}


def test_chat_answers_with_the_seed_shape_plus_pending_approval(client: httpx.Client) -> None:
    response = client.post("/api/chat", json={"message": "hola copiloto", "session_id": sid()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "response",
        "tools_used",
        "signal",
        "pending_approval",
        "order",
        "verdict",
        "replayed",
    }
    assert "Echo: hola copiloto" in body["response"]
    assert body["tools_used"] == [] and body["signal"] is None and body["pending_approval"] is None
    assert body["order"] is None


def test_slash_signal_calls_get_ml_signal_without_the_model(client: httpx.Client) -> None:
    body = client.post("/api/chat", json={"message": "/signal XAUUSD 15m", "session_id": sid()}).json()
    assert "get_ml_signal" in body["tools_used"]
    signal = body["signal"]
    assert signal["symbol"] == "XAUUSD" and signal["action"] in {"LONG", "SHORT", "HOLD"}
    assert 0.0 <= signal["confidence"] <= 1.0


def test_model_tool_call_reaches_get_ml_signal(client: httpx.Client) -> None:
    body = client.post(
        "/api/chat", json={"message": "what's the signal on gold?", "session_id": sid()}
    ).json()
    assert body["tools_used"] == ["get_ml_signal"]
    assert body["signal"]["symbol"] == "XAUUSD"
    assert "get_ml_signal" in body["response"]  # the model's summary after reading the tool result


def test_stream_sends_nodes_then_tokens_then_final(client: httpx.Client) -> None:
    session = sid()
    response = client.post("/api/chat/stream", json={"message": "hola stream", "session_id": session})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "node" and names[-1] == "final"
    nodes = [data["node"] for name, data in events if name == "node"]
    assert nodes.index("load_context") < nodes.index("reason")
    tokens = "".join(data["text"] for name, data in events if name == "token")
    final = events[-1][1]
    assert tokens == "Echo: hola stream" and final["response"] == tokens
    # The streamed turn is stored like any other.
    state = client.get(f"/api/sessions/{session}").json()
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == ["hola stream"]


def test_stream_of_a_trade_pauses_with_approval_required(client: httpx.Client) -> None:
    session = sid()
    response = client.post("/api/chat/stream", json={"message": buy_command(client), "session_id": session})
    events = sse_events(response)
    names = [name for name, _ in events]
    assert "approval_required" in names and names[-1] == "final"
    assert names.index("approval_required") > names.index("node")
    proposal = dict(events)["approval_required"]["proposal"]
    assert events[-1][1]["pending_approval"]["proposal_id"] == proposal["proposal_id"]
    assert proposal["side"] == "BUY" and proposal["symbol"] == "XAUUSD"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"session_id": "x"}, "message"),
        ({"message": "hi"}, "session_id"),
        ({"message": "hi", "session_id": "bad id/with:colon"}, "session_id"),
        ({"message": 42, "session_id": "x"}, "message"),
    ],
)
def test_malformed_chat_bodies_get_a_readable_422(client: httpx.Client, body: dict, expected: str) -> None:
    response = client.post("/api/chat", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list) and expected in [e["loc"][-1] for e in detail]


def test_non_json_body_is_a_422_with_message(client: httpx.Client) -> None:
    response = client.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert [e["type"] for e in response.json()["detail"]] == ["json_invalid"]


def test_message_over_the_limit_is_refused_with_the_limit(client: httpx.Client) -> None:
    response = client.post("/api/chat", json={"message": "x" * (MAX_CHARS + 1), "session_id": sid()})
    assert response.status_code == 422
    assert str(MAX_CHARS) in error_text(response)
    stream = client.post("/api/chat/stream", json={"message": "x" * (MAX_CHARS + 1), "session_id": sid()})
    assert stream.status_code == 422


def test_oversize_body_is_413(client: httpx.Client) -> None:
    big = {"message": "hi", "session_id": sid(), "symbol": "XAUUSD", "pad": "y" * MAX_BODY}
    response = client.post("/api/chat", json=big)
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"message": "hi", "session_id": "x", "pad": "'
        yield b"z" * MAX_BODY
        yield b'"}'

    chunked = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413


def test_seed_clear_history_with_query_parameter(client: httpx.Client) -> None:
    session = sid()
    client.post("/api/chat", json={"message": "recuerda esto", "session_id": session})
    response = client.post("/api/clear_history", params={"session_id": session})
    assert response.status_code == 200 and response.json()["status"] == "cleared"
    assert client.get(f"/api/sessions/{session}").json()["messages"] == []
    assert client.post("/api/clear_history", json={"session_id": session}).status_code == 200
    assert client.post("/api/clear_history").status_code == 422


def test_metrics_count_requests_and_runs(client: httpx.Client) -> None:
    client.post("/api/chat", json={"message": "count me", "session_id": sid()})
    text = client.get("/metrics").text
    assert 'copilot_http_requests_total{method="POST",route="/api/chat",status="200"}' in text
    assert 'copilot_graph_runs_total{kind="chat",outcome="ok"}' in text


def test_openapi_lists_the_endpoints(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/chat", "/api/chat/stream", "/api/sessions/{session_id}/approval", "/api/health"):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_web_page_is_served_without_external_resources(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>Trading Copilot</title>" in page.text
    modules = sorted(
        p.name for p in (Path(__file__).resolve().parents[1] / "server" / "web" / "js").glob("*.js")
    )
    assert "main.js" in modules
    for asset in ("/static/app.css", *(f"/static/js/{m}" for m in modules)):
        body = client.get(asset)
        text = body.text.replace("http://www.w3.org/2000/svg", "")  # SVG's namespace name: it loads nothing
        assert body.status_code == 200 and "http://" not in text and "https://" not in text, asset
    # The one link out is the attribution the chart library's licence asks for: an <a>, it loads nothing.
    assert re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text) == ["https://www.tradingview.com/"]
    assert (
        client.get(
            "/static/vendor/lightweight-charts/lightweight-charts.standalone.production.mjs"
        ).status_code
        == 200
    )
