"""Free text end to end: HTTP API → graph → ChatOllama → an Ollama-speaking server, native and JSON modes.

The only stand-in is the model server (tests/support/ollama_double.py speaks Ollama's /api/chat and /api/show
wire formats); the app, the graph, the tools, the risk gate and the paper broker are the real ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graph.model.errors import reset_chat_outcomes
from prompts import SYSTEM_PROMPT
from server.app import create_app
from tests.support.api_support import api_settings
from tests.support.ollama_double import OllamaDouble, Reply
from tests.support.serving import serve_app

NATIVE = "llama3.1:8b-instruct-q5_K_M"
PLAIN = "llama3:8b-instruct-q5_K_M"
SIGNAL_CALL = {"name": "get_ml_signal", "arguments": {"symbol": "XAUUSD", "timeframe": "15m"}}


@pytest.fixture(scope="module")
def double() -> Iterator[tuple[OllamaDouble, str]]:
    fake = OllamaDouble(models={NATIVE: ["completion", "tools"], PLAIN: ["completion"]})
    with serve_app(fake.app()) as url:
        yield fake, url


def copilot_client(redis_url: str, shared_data: Path, tmp_path: Path, ollama_url: str, model: str) -> Any:
    settings = api_settings(redis_url, shared_data, tmp_path, llm={"base_url": ollama_url, "model": model})
    return serve_app(create_app(settings))


def test_free_text_uses_native_tool_calls(
    double: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = double
    fake.requests.clear()
    fake.queue(Reply(tool_calls=[SIGNAL_CALL]), Reply(content="Oro: la señal dice esperar (HOLD)."))
    with copilot_client(redis_url, shared_data, tmp_path, ollama_url, NATIVE) as url:
        question = {"message": "¿Qué dice la señal del oro?", "session_id": "n1"}
        body = httpx.post(f"{url}/api/chat", json=question, timeout=60).json()
        health = httpx.get(f"{url}/api/health").json()
    assert body["response"] == "Oro: la señal dice esperar (HOLD)."
    assert body["tools_used"] == ["get_ml_signal"] and body["signal"]["symbol"] == "XAUUSD"
    assert health["llm_status"] == "ok"
    first, second = fake.requests[-2:]
    assert first["model"] == NATIVE and first["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    names = {t["function"]["name"] for t in first["tools"]}
    assert {"get_ml_signal", "analyze_market", "get_portfolio", "execute_trade", "set_alert"} <= names
    assert first["options"]["num_ctx"] == 8192 and first["options"]["temperature"] == 0.7
    tool_turns = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_turns) == 1 and json.loads(tool_turns[0]["content"])["symbol"] == "XAUUSD"
    assert tool_turns[0]["tool_name"] == "get_ml_signal"  # Ollama's field naming the tool that answered


def test_a_model_written_trade_waits_for_approval(
    double: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = double
    fake.requests.clear()
    with copilot_client(redis_url, shared_data, tmp_path, ollama_url, NATIVE) as url:
        ask = httpx.get(f"{url}/api/quote/XAUUSD").json()["ask"]
        trade = {"name": "execute_trade", "arguments": {"symbol": "XAUUSD", "action": "BUY", "size": 50,
                 "stop_loss": round(ask - 10, 2), "take_profit": round(ask + 20, 2)}}  # fmt: skip
        small = {**trade, "arguments": {**trade["arguments"], "size": 0.1}}
        fake.queue(Reply(tool_calls=[trade]), Reply(content="Bloqueado: demasiado grande."),
                   Reply(tool_calls=[small]))  # fmt: skip
        big = httpx.post(f"{url}/api/chat", json={"message": "compra 50 lotes ya", "session_id": "n2"},
                         timeout=60).json()  # fmt: skip
        # The gate's own line leads: the model's words never stand alone after a block.
        assert big["pending_approval"] is None and big["verdict"]["passed"] is False
        blocked_line = "BLOCKED by the risk rules, nothing was executed:\n- "  # then the gate's reasons
        assert big["response"].startswith(blocked_line), big["response"]
        assert big["response"].endswith("\n\nBloqueado: demasiado grande.")
        assert all(f"- {reason}" in big["response"] for reason in big["verdict"]["reasons"])
        blocked = [m for m in fake.requests[-1]["messages"] if m["role"] == "tool"]
        assert blocked[-1]["content"].startswith("BLOCKED") and "50.0 lots" in blocked[-1]["content"]
        ok = httpx.post(f"{url}/api/chat", json={"message": "entonces 0.1", "session_id": "n2"},
                        timeout=60).json()  # fmt: skip
        proposal = ok["pending_approval"]
        assert proposal is not None and proposal["size_lots"] == 0.1
        # The model cannot approve: nothing is placed until the trader decides.
        assert httpx.get(f"{url}/api/portfolio").json()["positions"] == []


def test_json_mode_for_a_model_without_tools(
    double: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = double
    fake.requests.clear()
    as_json = json.dumps({"tool_calls": [SIGNAL_CALL], "content": ""})
    final = json.dumps({"tool_calls": [], "content": "Gold: HOLD for now."})
    fake.queue(Reply(content=as_json), Reply(content=final))
    with copilot_client(redis_url, shared_data, tmp_path, ollama_url, PLAIN) as url:
        body = httpx.post(f"{url}/api/chat", json={"message": "gold signal?", "session_id": "n3"},
                          timeout=60).json()  # fmt: skip
    assert body["tools_used"] == ["get_ml_signal"] and body["response"] == "Gold: HOLD for now."
    first = fake.requests[-2]
    assert not first.get("tools") and first["format"]["required"] == ["tool_calls", "content"]
    assert first["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_the_server_loads_the_model_at_start(
    double: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    import time

    fake, ollama_url = double
    fake.load_requests.clear()
    with copilot_client(redis_url, shared_data, tmp_path, ollama_url, NATIVE):
        deadline = time.monotonic() + 30
        while not fake.load_requests and time.monotonic() < deadline:
            time.sleep(0.05)
    (load,) = fake.load_requests
    assert load["model"] == NATIVE and load["messages"] == [] and load["keep_alive"] == "30m"
    assert load["options"] == {"num_ctx": 8192}  # loaded with the context size every chat uses


async def test_warm_up_reports_what_happened(double: tuple[OllamaDouble, str], tmp_path: Path) -> None:
    from config import load_settings
    from graph.model.ollama_server import warm_up
    from server.in_thread import free_port

    _, ollama_url = double
    ok = load_settings(llm={"base_url": ollama_url, "model": NATIVE}, logging={"file": None})
    assert await warm_up(ok) == f"loaded {NATIVE} (keep_alive 30m)"
    missing = load_settings(llm={"base_url": ollama_url, "model": "nope:1b"}, logging={"file": None})
    assert "ollama pull nope:1b" in await warm_up(missing)
    down = load_settings(llm={"base_url": f"http://127.0.0.1:{free_port()}"}, logging={"file": None})
    assert "not reachable" in await warm_up(down)


# ---------------------------------------------------------------- streaming and failures through the server


@pytest.fixture
def clean(double: tuple[OllamaDouble, str]) -> Iterator[tuple[OllamaDouble, str]]:
    fake, _ = double
    fake.replies.clear()
    fake.requests.clear()
    reset_chat_outcomes()  # the health window is per process: start and leave it empty
    yield double
    reset_chat_outcomes()


def timed_sse(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> list[tuple[str, dict[str, Any], float]]:
    """The SSE events of one run as they arrive: (event, data, time.monotonic() at arrival)."""
    events, name = [], ""
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:]), time.monotonic()))
    return events


def test_json_mode_streams_the_answer_as_it_is_generated(
    clean: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = clean
    answer = "El oro está en HOLD: la confianza (55 %) no llega al 60 %, así que conviene esperar."
    fake.queue(
        Reply(content=json.dumps({"tool_calls": [SIGNAL_CALL], "content": ""}), chunks=6),
        Reply(content=json.dumps({"tool_calls": [], "content": answer}), chunks=12, interval_s=0.05),
    )
    with (
        copilot_client(redis_url, shared_data, tmp_path, ollama_url, PLAIN) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        events = timed_sse(client, "/api/chat/stream", {"message": "¿y el oro?", "session_id": "j1"})
    names = [name for name, _, _ in events]
    tokens = [(data["text"], at) for name, data, at in events if name == "token"]
    final = events[-1][1]
    assert names[-1] == "final" and names.index("tool") < names.index("token")
    assert final["response"] == answer and final["tools_used"] == ["get_ml_signal"]
    assert "".join(text for text, _ in tokens) == answer  # the decoded text only, never the JSON around it
    assert len(tokens) >= 6 and not any("tool_calls" in text for text, _ in tokens)
    # Streamed, not replayed: the first token reached the client before the model server sent its last chunk.
    assert tokens[0][1] < fake.sent_at[-1]


def test_model_failures_reach_the_trader_clearly_and_health_follows(
    clean: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = clean
    partial = "La señal del oro es LONG y el"
    failures = [
        (Reply(content=partial, done_reason="length"), "cut off at the length limit"),
        (Reply(content=partial, cut="no_done"), "without the final `done` message"),
        (Reply(content=partial, cut="mid_line"), "stopped inside a line"),
        (Reply(error="server busy, please try again.  maximum pending requests exceeded", status=503),
         "overloaded"),
    ]  # fmt: skip
    with (
        copilot_client(redis_url, shared_data, tmp_path, ollama_url, NATIVE) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for i, (reply, words) in enumerate(failures):
            fake.queue(reply)
            events = timed_sse(client, "/api/chat/stream", {"message": "¿señal?", "session_id": f"f{i}"})
            response = events[-1][1]["response"]
            assert words in response, response
            assert partial not in response and "JSONDecodeError" not in response
            assert "/signal" in response  # points at what still works
            opening = "not available right now" if words == "overloaded" else "answer could not be used"
            assert opening in response, response
        health = client.get("/api/health").json()
        assert health["status"] == "degraded" and health["llm_status"] == "failing"
        assert health["redis_status"] == "ok" and health["llm_error"].startswith("overloaded: ")
        fake.queue(Reply(content="Ahora sí: HOLD."))
        assert (
            client.post("/api/chat", json={"message": "¿y ahora?", "session_id": "f9"}).json()["response"]
            == "Ahora sí: HOLD."
        )
        health = client.get("/api/health").json()
        # Still degraded: 4 of the last 5 chat calls failed.
        assert health["llm_status"] == "failing"
        for n in range(4):
            fake.queue(Reply(content="ok"))
            client.post("/api/chat", json={"message": "hola", "session_id": f"g{n}"})
        assert client.get("/api/health").json() == {
            "status": "healthy",
            "llm_status": "ok",
            "redis_status": "ok",
        }


def test_json_mode_bad_tool_call_is_corrected_once_then_explained(
    clean: tuple[OllamaDouble, str], redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    fake, ollama_url = clean
    unknown = Reply(
        content=json.dumps({"tool_calls": [{"name": "get_weather", "arguments": {}}], "content": ""})
    )
    fake.queue(
        unknown, Reply(content=json.dumps({"tool_calls": [], "content": "No tengo el clima; el oro: HOLD."}))
    )
    with (
        copilot_client(redis_url, shared_data, tmp_path, ollama_url, PLAIN) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        fixed = client.post("/api/chat", json={"message": "¿clima?", "session_id": "b1"}).json()
        assert fixed["response"] == "No tengo el clima; el oro: HOLD."
        told = fake.requests[-1]["messages"][-1]
        assert told["role"] == "user" and "there is no tool named 'get_weather'" in told["content"]
        fake.queue(unknown, unknown)
        failed = client.post("/api/chat", json={"message": "¿clima otra vez?", "session_id": "b2"}).json()
        assert "no tool named 'get_weather'" in failed["response"] and "(no answer)" not in failed["response"]
        assert not fake.replies  # exactly one retry
