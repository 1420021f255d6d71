"""Shared pieces of the server tests: settings, a scripted model that follows the conversation, a live app."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from config import Settings, load_settings
from graph.model.fake import ScriptedChatModel, tool_call
from server.app import create_app
from tests.support.serving import serve_app

# The `serve_api` fixture (tests/conftest.py): serve_api(name, script=None, **settings overrides) -> base URL.
ApiServer = Callable[..., str]


def api_settings(redis_url: str, shared_data: Path, tmp_path: Path, **overrides: Any) -> Settings:
    """Real Redis with a fresh prefix, the real history. The gate's market-dependent rules (signal confidence,
    AMD phase) are relaxed so a trader's explicit /buy passes whatever the replayed market looks like."""
    risk = {"min_confidence": 0.0, "blocked_amd_phases": [], **overrides.pop("risk", {})}
    return load_settings(
        redis_url=redis_url,
        redis={"prefix": f"t{uuid.uuid4().hex[:10]}:"},
        data_dir=str(tmp_path / "data"),
        fallback_data_dir=str(shared_data),
        logging={"file": None},
        risk=risk,
        **overrides,
    )


class Script:
    """The fake model's behaviour, chosen by the trader's last message (so one model serves many tests):
    - "signal" in it → calls get_ml_signal, then summarises the tool result;
    - "slow" in it → blocks until `release` is set (a run that is still going);
    - anything else → echoes it, word by word when streamed.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, messages: list[BaseMessage]) -> AIMessage | str:
        last = next(m for m in reversed(messages) if not isinstance(m, SystemMessage))
        if isinstance(last, ToolMessage):
            return f"Resumen: la herramienta {last.name} respondió."
        said = str(last.content) if isinstance(last, HumanMessage) else ""
        if "signal" in said.lower():
            return tool_call(
                "get_ml_signal", {"symbol": "XAUUSD", "timeframe": "15m"}, f"call_{uuid.uuid4().hex}"
            )
        if "slow" in said.lower():
            self.entered.set()
            self.release.wait(30)
            return "slow answer done"
        return f"Echo: {said}"


def scripted_model(script: Script | None = None) -> ScriptedChatModel:
    return ScriptedChatModel(replies=[script or Script()])


@contextmanager
def running_app(settings: Settings, script: Script | None = None, port: int | None = None) -> Iterator[str]:
    """A real app under uvicorn (its lifespan opens the Copilot on the server's loop); yields the base URL."""
    app = create_app(settings, chat_model=scripted_model(script))
    with serve_app(app, port) as url:
        yield url


def user_keys(*names: str) -> dict[str, str]:
    """server.api_keys for these users: each one's key is the one `as_user` sends."""
    return {_api_key(name): name for name in names}


def as_user(url: str, name: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": _api_key(name)})


def _api_key(name: str) -> str:
    return f"key-{name}-0123456789"


def error_text(response: httpx.Response) -> str:
    """A 422's `HTTPValidationError` as `where: message; ...` (the body wrapper left out), other errors'
    `detail` as is: what the tests look for words in."""
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return "; ".join(".".join(str(p) for p in e["loc"][1:]) + f": {e['msg']}" for e in detail)


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """Parse a whole text/event-stream body into (event, data) pairs."""
    events = []
    for frame in response.text.split("\n\n"):
        name, data = None, ""
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if name:
            events.append((name, json.loads(data) if data else {}))
    return events


def buy_command(
    client: httpx.Client, symbol: str = "XAUUSD", sl_usd: float = 10.0, tp_usd: float = 20.0
) -> str:
    """A /buy whose levels pass the gate at the current replay price: SL below the bid, TP at R:R 2."""
    ask = current_ask(client, symbol)
    return f"/buy {symbol} sl {round(ask - sl_usd, 2)} tp {round(ask + tp_usd, 2)}"


def current_ask(client: httpx.Client, symbol: str) -> float:
    response = client.get(f"/api/quote/{symbol}")
    assert response.status_code == 200, response.text
    return float(response.json()["ask"])
