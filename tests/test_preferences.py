"""Per-trader preferences over real HTTP and real Redis: bounds (422 naming the field, nothing stored),
privacy between two users, a server restart on the same Redis, /prefs in the chat, the gate sizing with the
trader's risk, the language reaching the model's prompt, and a new session starting on the trader's symbol."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage

from config.settings import RiskSettings
from graph.risk.proposals import trader_limits
from graph.slash import PrefsCommand, SlashError, parse_slash
from prompts.system import LANGUAGE_LINES, live_context
from tests.support.api_support import (
    ApiServer,
    Script,
    api_settings,
    as_user,
    buy_command,
    running_app,
    user_keys,
)

USERS = user_keys("ana", "ben")
DEFAULTS = {
    "language": "auto",
    "symbol": "XAUUSD",
    "timeframe": "15m",
    "risk_per_trade_pct": 1.0,  # the configured cap (risk.max_risk_per_trade_pct's default)
    "notify": ["fills", "closes", "alerts", "expiries"],
}


class Recording(Script):
    """The usual scripted model, keeping every prompt it was sent (the server runs in this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[list[BaseMessage]] = []

    def __call__(self, messages: list[BaseMessage]) -> AIMessage | str:
        self.prompts.append(list(messages))
        return super().__call__(messages)

    def last_prompt_text(self) -> str:
        return "\n".join(str(m.content) for m in self.prompts[-1])


@pytest.fixture(scope="module")
def script() -> Recording:
    return Recording()


@pytest.fixture(scope="module")
def url(serve_api: ApiServer, script: Recording) -> str:
    return serve_api("preferences", script, server={"api_keys": USERS})


@pytest.fixture
def ana(url: str) -> Iterator[httpx.Client]:
    with as_user(url, "ana") as client:
        client.put("/api/preferences", json={k: None for k in DEFAULTS}).raise_for_status()
        yield client


@pytest.fixture
def ben(url: str) -> Iterator[httpx.Client]:
    with as_user(url, "ben") as client:
        client.put("/api/preferences", json={k: None for k in DEFAULTS}).raise_for_status()
        yield client


def chat(client: httpx.Client, message: str, session: str | None = None) -> dict[str, Any]:
    body = {"message": message, "session_id": session or f"p-{uuid.uuid4().hex[:8]}"}
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_defaults_are_filled_in_and_a_subset_changes_only_itself(ana: httpx.Client) -> None:
    assert ana.get("/api/preferences").json() == DEFAULTS
    changed = ana.put("/api/preferences", json={"risk_per_trade_pct": 0.5, "notify": ["fills", "fills"]})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**DEFAULTS, "risk_per_trade_pct": 0.5, "notify": ["fills"]}
    again = ana.put("/api/preferences", json={"language": "en", "timeframe": "1h", "symbol": "EURUSD"})
    expected = {**DEFAULTS, "risk_per_trade_pct": 0.5, "notify": ["fills"], "language": "en"}
    assert again.json() == {**expected, "timeframe": "1h", "symbol": "EURUSD"}
    assert ana.get("/api/preferences").json() == again.json()
    # null puts one field back to its default; an empty notify list is a choice (no notices)
    reset = ana.put("/api/preferences", json={"risk_per_trade_pct": None, "notify": []})
    assert reset.json()["risk_per_trade_pct"] == 1.0 and reset.json()["notify"] == []


BAD = [
    ({"language": "fr"}, "language"),
    ({"language": 1}, "language"),
    ({"symbol": "BTCUSD"}, "symbol"),  # not a symbol this server knows
    ({"symbol": "eurusd"}, "symbol"),
    ({"timeframe": "2h"}, "timeframe"),
    ({"risk_per_trade_pct": 0}, "risk_per_trade_pct"),
    ({"risk_per_trade_pct": -0.5}, "risk_per_trade_pct"),
    ({"risk_per_trade_pct": 1.01}, "risk_per_trade_pct"),  # above the cap: a preference never loosens it
    ({"risk_per_trade_pct": "0.5"}, "risk_per_trade_pct"),
    ({"risk_per_trade_pct": True}, "risk_per_trade_pct"),
    ({"notify": ["sms"]}, "notify"),
    ({"notify": "fills"}, "notify"),
    ({"theme": "dark"}, "theme"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f"{f}={v}" for (b, f) in BAD for v in b.values()])
def test_out_of_bounds_wrong_type_or_unknown_is_a_422_naming_the_field_and_nothing_is_stored(
    ana: httpx.Client, body: dict[str, Any], field: str
) -> None:
    ana.put("/api/preferences", json={"language": "es"}).raise_for_status()
    before = ana.get("/api/preferences").json()
    # With a valid change beside it: the whole request is refused, the valid part not stored either.
    response = ana.put("/api/preferences", json={"timeframe": "4h", **body})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(e["loc"][:2] == ["body", field] for e in detail), detail
    assert ana.get("/api/preferences").json() == before


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_risk_is_a_422(ana: httpx.Client, raw: str) -> None:
    body = '{"risk_per_trade_pct": ' + raw + "}"  # Python's JSON reader takes these; the model must not
    response = ana.put("/api/preferences", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "risk_per_trade_pct"]
    assert ana.get("/api/preferences").json()["risk_per_trade_pct"] == 1.0


def test_preferences_are_private_to_each_user(ana: httpx.Client, ben: httpx.Client) -> None:
    ana.put("/api/preferences", json={"language": "en", "risk_per_trade_pct": 0.25}).raise_for_status()
    assert ben.get("/api/preferences").json() == DEFAULTS
    ben.put("/api/preferences", json={"symbol": "GBPUSD"}).raise_for_status()
    assert ana.get("/api/preferences").json() == {**DEFAULTS, "language": "en", "risk_per_trade_pct": 0.25}
    # /prefs in a chat shows the caller's own
    assert "risk per trade: 0.25 %" in chat(ana, "/prefs")["response"]
    shown = chat(ben, "/prefs")["response"]
    assert "risk per trade: 1 %" in shown and "symbol: GBPUSD" in shown
    with httpx.Client(base_url=str(ana.base_url), timeout=30) as anonymous:
        assert anonymous.get("/api/preferences").status_code == 401
        assert anonymous.put("/api/preferences", json={"language": "es"}).status_code == 401


def test_prefs_in_the_chat_sets_and_refuses_with_the_same_rules(ana: httpx.Client) -> None:
    said = chat(ana, "/prefs risk 0,5 language EN symbol eurusd tf 1h notify fills, alerts")["response"]
    assert said.startswith("Saved")
    expected = {"language": "en", "symbol": "EURUSD", "timeframe": "1h", "risk_per_trade_pct": 0.5}
    assert ana.get("/api/preferences").json() == {**DEFAULTS, **expected, "notify": ["fills", "alerts"]}
    for bad, word in [
        ("/prefs risk 2", "risk_per_trade_pct"),
        ("/prefs risk nan", "risk_per_trade_pct"),
        ("/prefs risk 0", "risk_per_trade_pct"),
        ("/prefs symbol BTCUSD", "symbol"),
        ("/prefs language fr", "language"),
        ("/prefs notify sms", "notify"),
    ]:
        refused = chat(ana, bad)["response"]
        assert word in refused and "Nothing was saved" in refused, (bad, refused)
    assert "unknown preference 'colour'" in chat(ana, "/prefs colour red")["response"]
    assert ana.get("/api/preferences").json()["risk_per_trade_pct"] == 0.5
    chat(ana, "/prefs risk default")
    assert ana.get("/api/preferences").json()["risk_per_trade_pct"] == 1.0


def test_the_gate_sizes_with_the_traders_risk(ana: httpx.Client) -> None:
    """The same /buy without a size: at 1 % (the cap) and then at the trader's 0.5 %, half the lots."""
    command = buy_command(ana, sl_usd=10.0, tp_usd=20.0)
    at_cap = chat(ana, command)["pending_approval"]
    assert at_cap is not None, "the /buy was not proposed"
    ana.put("/api/preferences", json={"risk_per_trade_pct": 0.5}).raise_for_status()
    halved = chat(ana, command)["pending_approval"]
    assert halved is not None
    assert (at_cap["risk_limit_pct"], at_cap["risk_cap_pct"]) == (1.0, 1.0)
    assert (halved["risk_limit_pct"], halved["risk_cap_pct"]) == (0.5, 1.0)
    print(f"size at 1 %: {at_cap['size_lots']} lots, at 0.5 %: {halved['size_lots']} lots")
    assert at_cap["size_lots"] > 0
    assert abs(halved["size_lots"] - at_cap["size_lots"] / 2) <= 0.011  # one lot step (XAUUSD: 0.01)
    assert halved["risk_pct"] <= 0.5 < at_cap["risk_pct"]
    text = chat(ana, command)["response"]
    assert "your risk 0.5 %, cap 1 %" in text
    # An explicit size above the trader's risk is blocked, though the cap would allow it.
    explicit = command.replace("/buy XAUUSD", f"/buy XAUUSD {at_cap['size_lots']}")
    blocked = chat(ana, explicit)
    assert blocked["pending_approval"] is None and "0.5% of equity" in blocked["response"]


def test_the_language_reaches_the_prompt_and_a_new_session_starts_on_the_traders_symbol(
    ana: httpx.Client, script: Recording
) -> None:
    chat(ana, "hola, ¿cómo va el oro?")
    auto = script.last_prompt_text()
    assert not any(line in auto for line in LANGUAGE_LINES.values())
    assert "symbol: XAUUSD" in auto
    ana.put("/api/preferences", json={"language": "en", "symbol": "EURUSD"}).raise_for_status()
    session = f"p-{uuid.uuid4().hex[:8]}"
    chat(ana, "hola, ¿qué tal?", session)
    english = script.last_prompt_text()
    assert LANGUAGE_LINES["en"] in english
    # The live context is about the trader's symbol (EURUSD's history ends in 2018: named, without data).
    assert "session symbol: EURUSD" in english
    # The session keeps its symbol when the preference changes later; a new session takes the new one.
    ana.put("/api/preferences", json={"language": "es", "symbol": "GBPUSD"}).raise_for_status()
    chat(ana, "y ahora?", session)
    spanish = script.last_prompt_text()
    assert LANGUAGE_LINES["es"] in spanish.split("y ahora?")[0].rsplit("Contexto actual", 1)[1]
    assert "session symbol: EURUSD" in spanish.rsplit("Contexto actual", 1)[1]
    chat(ana, "hola")
    assert "session symbol: GBPUSD" in script.last_prompt_text().rsplit("Contexto actual", 1)[1]


def test_preferences_are_kept_across_a_server_restart(
    redis_server: Any, shared_data: Path, tmp_path: Path
) -> None:
    settings = api_settings(redis_server.url, shared_data, tmp_path, server={"api_keys": USERS})
    with running_app(settings) as url, as_user(url, "ana") as client:
        stored = client.put("/api/preferences", json={"language": "en", "risk_per_trade_pct": 0.5})
        assert stored.status_code == 200, stored.text
    with running_app(settings) as url, as_user(url, "ana") as client, as_user(url, "ben") as other:
        assert client.get("/api/preferences").json() == stored.json()
        assert other.get("/api/preferences").json() == DEFAULTS
        assert client.get("/openapi.json").json()["paths"]["/api/preferences"].keys() == {"get", "put"}
    # A lower cap configured later wins over a stored preference above it.
    lower = settings.model_copy(
        update={"risk": settings.risk.model_copy(update={"max_risk_per_trade_pct": 0.3})}
    )
    with running_app(lower) as url, as_user(url, "ana") as client:
        assert client.get("/api/preferences").json()["risk_per_trade_pct"] == 0.3


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        ("/prefs", {}),
        ("/prefs risk 0,5", {"risk_per_trade_pct": 0.5}),
        ("/prefs risk 0.5%", {"risk_per_trade_pct": 0.5}),
        ("/prefs language EN symbol eurusd", {"language": "en", "symbol": "EURUSD"}),
        ("/prefs notify fills, closes tf 1h", {"notify": ["fills", "closes"], "timeframe": "1h"}),
        ("/prefs notify none", {"notify": []}),
        ("/prefs notify all", {"notify": ["fills", "closes", "alerts", "expiries"]}),
        ("/prefs risk default", {"risk_per_trade_pct": None}),
    ],
)
def test_prefs_commands_parse(text: str, changes: dict[str, Any]) -> None:
    assert parse_slash(text) == PrefsCommand(changes)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("/prefs colour red", "unknown preference 'colour'"),
        ("/prefs risk", "risk needs a value"),
        ("/prefs risk lots", "risk must be a number"),
    ],
)
def test_malformed_prefs_commands_say_why(text: str, said: str) -> None:
    command = parse_slash(text)
    assert isinstance(command, SlashError) and said in command.message


def test_the_language_line_is_in_the_live_context_only_when_chosen() -> None:
    now = datetime(2026, 3, 2, 8, 5, tzinfo=UTC)
    limits = RiskSettings()
    assert not any(line in live_context(None, None, limits, now) for line in LANGUAGE_LINES.values())
    assert LANGUAGE_LINES["en"] in live_context(None, None, limits, now, "en")
    assert LANGUAGE_LINES["es"] in live_context(None, None, limits, now, "es")
    tighter = trader_limits(limits, 0.5)
    assert "Max risk per trade: 0.5%" in live_context(None, None, tighter, now, "en", "EURUSD")
    assert trader_limits(limits, 5.0) is limits  # above the cap: the cap stays
