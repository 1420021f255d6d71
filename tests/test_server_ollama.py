"""Free text end to end: HTTP API → graph → ChatOllama → an Ollama-speaking server, native and JSON modes.

The only stand-in is the model server (tests/ollama_double.py speaks Ollama's /api/chat and /api/show wire
formats); the app, the graph, the tools, the risk gate and the paper broker are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prompts import SYSTEM_PROMPT
from server.app import create_app
from tests.api_support import api_settings
from tests.conftest import serve_app
from tests.ollama_double import OllamaDouble, Reply

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
        assert big["pending_approval"] is None and big["response"] == "Bloqueado: demasiado grande."
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
    from graph.llm import warm_up
    from tests.conftest import free_port

    _, ollama_url = double
    ok = load_settings(llm={"base_url": ollama_url, "model": NATIVE}, logging={"file": None})
    assert await warm_up(ok) == f"loaded {NATIVE} (keep_alive 30m)"
    missing = load_settings(llm={"base_url": ollama_url, "model": "nope:1b"}, logging={"file": None})
    assert "ollama pull nope:1b" in await warm_up(missing)
    down = load_settings(llm={"base_url": f"http://127.0.0.1:{free_port()}"}, logging={"file": None})
    assert "not reachable" in await warm_up(down)
