"""The cockpit's API: candles up to the market clock, limits, governing signal, closed trades, performance,
the live event stream (fills, SL/TP closes, alerts) and the OpenAPI's API-key scheme."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from server.api.performance import performance
from server.app import create_app
from tests.support.api_support import Script, api_settings, current_ask, scripted_model
from tests.support.serving import serve_app
from tools.broker.ledger import ClosedTrade
from tools.redis_embedded import EmbeddedRedis


@pytest.fixture
def live(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path
) -> Iterator[tuple[FastAPI, httpx.Client]]:
    settings = api_settings(redis_server.url, shared_data, tmp_path, broker={"tick_seconds": 1})
    app = create_app(settings, chat_model=scripted_model(Script()))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield app, client


def open_position(client: httpx.Client, session: str, sl_usd: float, tp_usd: float) -> int:
    ask = current_ask(client, "XAUUSD")
    body = {"message": f"/buy XAUUSD 0.01 sl {ask - sl_usd:.2f} tp {ask + tp_usd:.2f}", "session_id": session}
    proposal = client.post("/api/chat", json=body).json()["pending_approval"]
    decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
    order = client.post(f"/api/sessions/{session}/approval", json=decision).json()["order"]
    assert order["status"] == "executed", order
    return int(order["ticket"])


def read_events(
    client: httpx.Client, until: str, last_event_id: str | None = None, symbol: str = "XAUUSD"
) -> tuple[list[tuple[str, dict]], str | None]:
    """SSE frames of GET /api/events until one named `until` (or the stream's end), and the last id seen
    (the stream opens with its position: an `id:` without data)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[tuple[str, dict]] = []
    seen_id = None
    with client.stream("GET", f"/api/events?symbol={symbol}", headers=headers) as response:
        assert response.status_code == 200
        name = None
        for line in response.iter_lines():
            if line.startswith("id:"):
                seen_id = line[3:].strip()
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line[5:])))
                if name == until:
                    break
    return events, seen_id


def test_bars_end_at_the_market_clock_and_switch_timeframes(live: tuple[FastAPI, httpx.Client]) -> None:
    _, client = live
    for timeframe, seconds in (("1m", 60), ("15m", 900), ("1d", 86400)):
        body = client.get(f"/api/bars/XAUUSD?timeframe={timeframe}&bars=50").json()
        now = datetime.fromisoformat(body["now"]).timestamp()
        times = [b["time"] for b in body["bars"]]
        assert 0 < len(times) <= 50 and times == sorted(set(times))
        assert times[-1] <= now < times[-1] + 2 * seconds  # the latest bars, none after the market clock
    assert client.get("/api/bars/NOPE").status_code == 404
    assert client.get("/api/bars/XAUUSD?timeframe=2m").status_code == 422


def test_limits_and_the_governing_signal(live: tuple[FastAPI, httpx.Client]) -> None:
    _, client = live
    limits = client.get("/api/limits").json()
    assert limits["leverage"] == 100 and limits["signal_timeframe"] == "5m"
    signal = client.get("/api/signal/XAUUSD").json()
    assert signal["timeframe"] == "5m" and signal["action"] in ("LONG", "SHORT", "HOLD")
    spec = client.get("/api/symbols").json()["XAUUSD"]
    assert spec["contract_size"] == 100 and spec["quote_currency"] == "USD"


def test_the_event_stream_pushes_a_close_by_the_market_with_no_request(
    live: tuple[FastAPI, httpx.Client],
) -> None:
    app, client = live
    ticket = open_position(client, "ev-1", sl_usd=4, tp_usd=6)
    first, position = read_events(client, until="portfolio")
    assert [n for n, _ in first][:2] == ["market", "portfolio"] and first[0][1]["available"] is True
    assert [p["ticket"] for p in first[-1][1]["positions"]] == [ticket]
    assert client.get("/api/trades").json()["trades"] == []
    clock = app.state.copilot.services.clock
    for _ in range(40):  # the market moves on until the position's SL or TP is reached
        clock.history_anchor += timedelta(minutes=30)
        if client.get("/api/trades").json()["trades"]:
            break
    trades = client.get("/api/trades").json()["trades"]
    assert [t["ticket"] for t in trades] == [ticket] and trades[0]["reason"] in ("sl", "tp")
    assert trades[0]["duration_seconds"] > 0
    # A page that reconnects from its position before the close gets the close (only), with its id.
    replay, close_id = read_events(client, until="fill", last_event_id=position)
    fills = [data for name, data in replay if name == "fill"]
    assert [(f["ticket"], f["kind"]) for f in fills] == [(str(ticket), trades[0]["reason"])]
    assert close_id != position
    again, _ = read_events(client, until="market", last_event_id=close_id)
    assert "fill" not in [n for n, _ in again]  # from the close's id on, nothing is sent twice
    perf = client.get("/api/performance").json()
    assert perf["trades"] == 1 and perf["pnl_usd"] == trades[0]["pnl_usd"]
    assert perf["equity"][0]["balance_usd"] == 10_000 and perf["daily"][0]["trades"] == 1


def test_an_alert_triggered_by_the_market_is_pushed(live: tuple[FastAPI, httpx.Client]) -> None:
    app, client = live
    _, position = read_events(client, until="market")
    bid = float(client.get("/api/quote/XAUUSD").json()["bid"])
    client.post("/api/chat", json={"message": f"/alert XAUUSD below {bid - 1:.2f} dip", "session_id": "al-1"})
    for _ in range(40):
        app.state.copilot.services.clock.history_anchor += timedelta(minutes=30)
        events, _ = read_events(client, until="market", last_event_id=position)
        alerts = [d for n, d in events if n == "alert"]
        if alerts:
            break
    else:
        events, _ = read_events(client, until="alert", last_event_id=position)
        alerts = [d for n, d in events if n == "alert"]
    assert alerts and alerts[0]["status"] == "triggered" and alerts[0]["message"] == "dip"


def test_a_stale_symbol_says_so_once_and_the_accounts_notices_keep_flowing(
    live: tuple[FastAPI, httpx.Client],
) -> None:
    """EURUSD's history ends in 2018: its stream has no quote to show, but the XAUUSD fill still arrives."""
    _, client = live
    _, position = read_events(client, until="market")
    ticket = open_position(client, "ev-stale", sl_usd=4, tp_usd=6)
    for symbol, why in (
        ("EURUSD", "EURUSD has no recent price"),
        ("gbpusd", "no market data loaded for GBPUSD"),
    ):
        events, _ = read_events(client, until="fill", last_event_id=position, symbol=symbol)
        markets = [d for n, d in events if n == "market"]
        assert len(markets) == 1 and markets[0]["available"] is False and why in markets[0]["reason"], markets
        assert markets[0]["symbol"] == symbol.upper() and "problem" not in [n for n, _ in events]
        fill = next(d for n, d in events if n == "fill")
        assert (fill["ticket"], fill["kind"], fill["symbol"]) == (str(ticket), "open", "XAUUSD")
        assert [p["ticket"] for p in next(d for n, d in events if n == "portfolio")["positions"]] == [ticket]
    events, _ = read_events(client, until="fill", last_event_id=position, symbol="NOPE")
    assert events[0] == ("market", {**events[0][1], "symbol": "NOPE", "available": False})
    assert "unknown symbol 'NOPE'" in events[0][1]["reason"] and "XAUUSD" in events[0][1]["reason"]
    assert [d["ticket"] for n, d in events if n == "fill"] == [str(ticket)]


def test_openapi_declares_the_api_key_scheme(live: tuple[FastAPI, httpx.Client]) -> None:
    _, client = live
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": spec["components"]["securitySchemes"]["ApiKeyHeader"]["description"],
    }
    assert spec["paths"]["/api/chat"]["post"]["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}]
    assert "security" not in spec["paths"]["/api/health"]["get"]
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-assets/redoc.standalone.js").status_code == 200


def test_performance_adds_up_closed_trades_by_day_and_week() -> None:
    def trade(ticket: int, day: int, pnl: float) -> ClosedTrade:
        opened = datetime(2026, 3, day, 10, tzinfo=UTC)
        return ClosedTrade(
            ticket=ticket, symbol="XAUUSD", side="BUY", lots=0.1, open_price=1.0, open_time=opened,
            close_price=1.0, close_time=opened + timedelta(hours=1), reason="tp" if pnl > 0 else "sl",
            pnl_usd=pnl,
        )  # fmt: skip

    perf = performance([trade(1, 2, 50.0), trade(2, 2, -20.0), trade(3, 9, 10.0)], balance_usd=10_040.0)
    # Trades 1 and 2 close in the same second: one point (a chart's times must rise).
    assert [p.balance_usd for p in perf.equity] == [10_000.0, 10_030.0, 10_040.0]
    assert perf.wins == 2 and perf.losses == 1 and perf.win_rate_pct == 66.7
    assert [(d.start.day, d.trades, d.pnl_usd) for d in perf.daily] == [(9, 1, 10.0), (2, 2, 30.0)]
    assert [(w.start.day, w.trades) for w in perf.weekly] == [(9, 1), (2, 2)]
