"""Approvals over real HTTP: round trip, after a restart, on another app instance, and one run per session."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from config import Settings
from server.app import create_app
from tests.support.api_support import (
    ApiServer,
    Script,
    api_settings,
    as_user,
    buy_command,
    running_app,
    scripted_model,
    sse_events,
    user_keys,
)
from tests.support.locks import WatchedLocks
from tests.support.serving import serve_app
from tools.keys import SessionKeys
from tools.locks import Leases
from tools.redis_embedded import EmbeddedRedis

USERS = user_keys("ana", "beto", "carla", "dora")
METRICS_KEY = "metrics-key-0123456789"  # /metrics of a keyed server answers to this key only


@pytest.fixture(scope="module")
def shared_url(serve_api: ApiServer) -> str:
    """One app for the tests that need no restart; each test trades as its own user (own paper account)."""
    return serve_api("approval", server={"api_keys": USERS, "metrics_key": METRICS_KEY})


@pytest.fixture
def settings_shared(redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path) -> Settings:
    """One configuration (same Redis, same prefix) for every app instance of a test."""
    return api_settings(redis_server.url, shared_data, tmp_path)


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def propose(client: httpx.Client, session: str) -> dict[str, Any]:
    body = client.post("/api/chat", json={"message": buy_command(client), "session_id": session}).json()
    proposal = body["pending_approval"]
    assert proposal is not None, body
    return dict(proposal)


def decide(
    client: httpx.Client, session: str, proposal_id: str, decision: str, **extra: Any
) -> httpx.Response:
    body = {"proposal_id": proposal_id, "decision": decision, **extra}
    return client.post(f"/api/sessions/{session}/approval", json=body)


def positions(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/api/portfolio").json()["positions"])


def counters(client: httpx.Client) -> dict[str, float]:
    """Approval decisions and executed orders so far, read from /metrics (other tests share the app)."""
    wanted = {
        "approvals": 'copilot_approval_decisions_total{decision="approve"}',
        "orders": 'copilot_orders_total{outcome="executed"}',
    }
    found = dict.fromkeys(wanted, 0.0)
    for line in client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text.splitlines():
        for key, series in wanted.items():
            if line.startswith(series + " "):
                found[key] = float(line.split()[-1])
    return found


def test_round_trip_places_exactly_one_order(shared_url: str) -> None:
    with as_user(shared_url, "ana") as client:
        session = sid()
        proposal = propose(client, session)
        assert proposal["side"] == "BUY" and proposal["verdict"]["passed"] is True
        assert 0 < proposal["risk_pct"] <= 1.0  # the default max_risk_per_trade_pct
        state = client.get(f"/api/sessions/{session}").json()
        assert state["pending_approval"]["proposal_id"] == proposal["proposal_id"]
        assert positions(client) == []  # nothing reaches the broker before the decision
        before = counters(client)

        response = decide(client, session, proposal["proposal_id"], "approve")
        assert response.status_code == 200, response.text
        assert response.json()["pending_approval"] is None
        opened = positions(client)
        assert len(opened) == 1
        assert opened[0]["stop_loss"] == proposal["stop_loss"]
        assert opened[0]["take_profit"] == proposal["take_profit"]
        assert opened[0]["size"] == proposal["size_lots"]

        # The same approval again: answered with how it ended (idempotent), and no second order appears.
        again = decide(client, session, proposal["proposal_id"], "approve")
        assert again.status_code == 200, again.text
        body = again.json()
        assert body["replayed"] is True and body["order"]["proposal_id"] == proposal["proposal_id"]
        assert body["response"].startswith("(Already decided") and "EXECUTED" in body["response"]
        assert len(positions(client)) == 1
        after = counters(client)
        assert after["orders"] - before["orders"] == 1  # the repeated answer placed and counted nothing
        # An approval for a proposal this session never had still answers 409.
        assert decide(client, session, "f" * 32, "approve").status_code == 409


def test_an_order_approved_in_the_chat_is_reported_and_counted(shared_url: str) -> None:
    with as_user(shared_url, "dora") as client:
        session = sid()
        proposal = propose(client, session)
        before = counters(client)
        body = client.post("/api/chat", json={"message": "/approve", "session_id": session}).json()
        assert (
            body["order"]["status"] == "executed" and body["order"]["proposal_id"] == proposal["proposal_id"]
        )
        assert counters(client)["orders"] - before["orders"] == 1
        # A turn that sends nothing to the broker reports no order.
        assert (
            client.post("/api/chat", json={"message": "/portfolio", "session_id": session}).json()["order"]
            is None
        )


def test_reject_and_wrong_proposal_id_execute_nothing(shared_url: str) -> None:
    with as_user(shared_url, "beto") as client:
        session = sid()
        proposal = propose(client, session)
        wrong = decide(client, session, "not-the-proposal", "approve")
        assert wrong.status_code == 200
        assert positions(client) == []
        pending = client.get(f"/api/sessions/{session}").json()["pending_approval"]
        if pending is not None:  # a wrong id either leaves the proposal pending or drops it; never executes
            assert pending["proposal_id"] == proposal["proposal_id"]
            rejected = decide(client, session, proposal["proposal_id"], "reject", reason="no me convence")
            assert rejected.status_code == 200 and rejected.json()["pending_approval"] is None
        assert positions(client) == []


def test_edit_goes_back_through_the_gate(shared_url: str) -> None:
    with as_user(shared_url, "carla") as client:
        session = sid()
        proposal = propose(client, session)
        response = decide(client, session, proposal["proposal_id"], "edit", edits={"size_lots": 0.01})
        assert response.status_code == 200, response.text
        edited = response.json()["pending_approval"]
        assert edited is not None and edited["size_lots"] == 0.01
        assert edited["risk_usd"] < proposal["risk_usd"]
        assert positions(client) == []


def test_approval_survives_a_restart(settings_shared: Settings) -> None:
    session = sid()
    with running_app(settings_shared) as url, httpx.Client(base_url=url, timeout=60) as client:
        proposal = propose(client, session)
    # A brand-new app object (new process state), same Redis: the paused thread is still there.
    with running_app(settings_shared) as url, httpx.Client(base_url=url, timeout=60) as client:
        state = client.get(f"/api/sessions/{session}").json()
        assert state["pending_approval"]["proposal_id"] == proposal["proposal_id"]
        assert decide(client, session, proposal["proposal_id"], "approve").status_code == 200
        assert len(positions(client)) == 1


def test_approval_requested_on_one_instance_resumes_on_another(settings_shared: Settings) -> None:
    with (
        running_app(settings_shared) as url_a,
        running_app(settings_shared) as url_b,
        httpx.Client(base_url=url_a, timeout=60) as a,
        httpx.Client(base_url=url_b, timeout=60) as b,
    ):
        session = sid()
        proposal = propose(a, session)
        response = b.post(
            f"/api/sessions/{session}/approval/stream",
            json={"proposal_id": proposal["proposal_id"], "decision": "approve"},
        )
        events = sse_events(response)
        assert events[-1][0] == "final" and events[-1][1]["pending_approval"] is None
        assert len(positions(a)) == 1 and positions(a) == positions(b)


def test_concurrent_messages_on_one_session_get_one_409(settings_shared: Settings) -> None:
    script = Script()
    script.release.clear()
    with (
        running_app(settings_shared, script) as url_a,
        running_app(settings_shared, Script()) as url_b,
        httpx.Client(base_url=url_a, timeout=60) as a,
        httpx.Client(base_url=url_b, timeout=60) as b,
    ):
        session = sid()
        results: dict[str, httpx.Response] = {}
        first = threading.Thread(
            target=lambda: results.update(
                first=a.post("/api/chat", json={"message": "slow one", "session_id": session})
            )
        )
        first.start()
        assert script.entered.wait(30), "the first run never reached the model"
        # While the first run is inside the model: same instance and the other instance are both refused.
        same = a.post("/api/chat", json={"message": "second", "session_id": session})
        other = b.post("/api/chat/stream", json={"message": "third", "session_id": session})
        other_user_session = a.post("/api/chat", json={"message": "elsewhere", "session_id": sid()})
        script.release.set()
        first.join(30)
        assert same.status_code == 409 and other.status_code == 409
        assert same.json()["detail"].startswith("a run is already in progress for this session; retry in")
        assert f"/api/sessions/{session}/cancel" in same.json()["detail"]
        assert 0 < int(same.headers["retry-after"]) <= 6
        assert other_user_session.status_code == 200  # other sessions are not blocked
        assert results["first"].status_code == 200
        assert "slow answer done" in results["first"].json()["response"]
        # The lock is released: the session takes messages again.
        assert a.post("/api/chat", json={"message": "after", "session_id": session}).status_code == 200
        said = [
            m["content"] for m in a.get(f"/api/sessions/{session}").json()["messages"] if m["role"] == "user"
        ]
        assert said == ["slow one", "after"]


def test_wait_policy_queues_the_second_message(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path
) -> None:
    settings = api_settings(redis_server.url, shared_data, tmp_path, server={"busy_policy": "wait"})
    script = Script()
    script.release.clear()
    app = create_app(settings, chat_model=scripted_model(script))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        polling, settled = threading.Event(), threading.Event()
        running: Leases = app.state.locks
        watched = WatchedLocks(running.redis, running.prefix, running.lease_seconds, running.wait, 120, 0.01)

        def refused(count: int) -> None:
            if count >= 2:  # polled twice: waiting for the lock, not refused
                polling.set()
                settled.set()

        watched.on_refused = refused
        app.state.locks = app.state.runs.locks = watched  # its Redis client stays the server loop's
        session = sid()
        results: dict[str, httpx.Response] = {}

        def post(name: str, message: str) -> threading.Thread:
            def send() -> None:
                results[name] = client.post("/api/chat", json={"message": message, "session_id": session})
                settled.set()

            thread = threading.Thread(target=send)
            thread.start()
            return thread

        first = post("first", "slow one")
        assert script.entered.wait(30)
        settled.clear()  # the first's answer cannot come while the script holds it
        second = post("second", "queued")
        # Whichever comes first: the second polling the held lock (right), or the second answered (wrong).
        assert settled.wait(30)
        assert polling.is_set() and "second" not in results, "the second message did not wait for the lock"
        with redis.Redis.from_url(settings.effective_redis_url, decode_responses=True) as sync:
            held = list(sync.scan_iter(match=SessionKeys(settings.redis.prefix, f"*:{session}").lease))
            assert len(held) == 1 and sync.get(held[0])  # the first run's lock, still held
        script.release.set()
        first.join(30)
        second.join(30)
        assert results["first"].status_code == 200 and results["second"].status_code == 200
        said = [
            m["content"]
            for m in client.get(f"/api/sessions/{session}").json()["messages"]
            if m["role"] == "user"
        ]
        assert said == ["slow one", "queued"]
