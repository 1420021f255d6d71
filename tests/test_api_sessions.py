"""Users and sessions over real HTTP: API keys, per-user isolation (404), checkpoints, clear, delete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api_support import ApiServer, Script, error_text

KEYS = {"alice-key-0123456789": "alice", "bob-key-0123456789": "bob"}


@pytest.fixture(scope="module")
def base_url(serve_api: ApiServer) -> str:
    return serve_api("api-sessions", Script(), server={"api_keys": KEYS})


def client_for(base_url: str, key: str | None, bearer: bool = False) -> httpx.Client:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if bearer else {"X-API-Key": key}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


@pytest.fixture
def alice(base_url: str) -> Iterator[httpx.Client]:
    with client_for(base_url, "alice-key-0123456789") as c:
        yield c


@pytest.fixture
def bob(base_url: str) -> Iterator[httpx.Client]:
    with client_for(base_url, "bob-key-0123456789", bearer=True) as c:
        yield c


def new_session(client: httpx.Client, *messages: str) -> str:
    session = f"s-{uuid.uuid4().hex[:8]}"
    for message in messages:
        response = client.post("/api/chat", json={"message": message, "session_id": session})
        assert response.status_code == 200, response.text
    return session


@pytest.mark.parametrize("key", [None, "wrong-key", "alice-key-012345678"])
def test_missing_or_invalid_key_is_401(base_url: str, key: str | None) -> None:
    with client_for(base_url, key) as c:
        for method, path in (("POST", "/api/chat"), ("GET", "/api/sessions"), ("GET", "/api/portfolio")):
            response = c.request(method, path, json={"message": "hi", "session_id": "x"})
            assert response.status_code == 401, (method, path)
            assert "API key" in response.json()["detail"]


def test_health_needs_no_key(base_url: str) -> None:
    with client_for(base_url, None) as c:
        assert c.get("/api/health").status_code == 200


def test_bearer_and_header_keys_both_identify_the_user(alice: httpx.Client, bob: httpx.Client) -> None:
    mine = new_session(alice, "hola")
    theirs = new_session(bob, "hello")
    assert mine in alice.get("/api/sessions").json()["sessions"]
    assert theirs in bob.get("/api/sessions").json()["sessions"]
    assert mine not in bob.get("/api/sessions").json()["sessions"]


def test_another_users_session_is_404_on_every_session_endpoint(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    session = new_session(alice, "secreto de alice")
    checkpoint = alice.get(f"/api/sessions/{session}/history").json()[0]["checkpoint_id"]
    decision = {"proposal_id": "p1", "decision": "approve", "edits": {}, "reason": ""}
    attempts = [
        ("GET", f"/api/sessions/{session}", None, None),
        ("GET", f"/api/sessions/{session}/history", None, None),
        ("GET", f"/api/sessions/{session}/history/{checkpoint}", None, None),
        ("POST", f"/api/sessions/{session}/approval", decision, None),
        ("POST", f"/api/sessions/{session}/approval/stream", decision, None),
        ("POST", f"/api/sessions/{session}/clear", None, None),
        ("POST", "/api/clear_history", None, {"session_id": session}),
        ("DELETE", f"/api/sessions/{session}", None, None),
    ]
    for method, path, body, params in attempts:
        response = bob.request(method, path, json=body, params=params)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["detail"] == "no such session for this user"
    # Nothing bob tried touched alice's conversation.
    state = alice.get(f"/api/sessions/{session}").json()
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == ["secreto de alice"]


def test_same_session_id_is_a_different_conversation_per_user(alice: httpx.Client, bob: httpx.Client) -> None:
    session = new_session(alice, "alice dice")
    bob.post("/api/chat", json={"message": "bob dice", "session_id": session})
    said = {
        who: [
            m["content"] for m in c.get(f"/api/sessions/{session}").json()["messages"] if m["role"] == "user"
        ]
        for who, c in (("alice", alice), ("bob", bob))
    }
    assert said == {"alice": ["alice dice"], "bob": ["bob dice"]}


def test_state_history_and_an_older_checkpoint(alice: httpx.Client) -> None:
    session = new_session(alice, "primero", "segundo")
    state = alice.get(f"/api/sessions/{session}").json()
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == ["primero", "segundo"]
    assert any(m["role"] == "assistant" and "Echo: segundo" in m["content"] for m in state["messages"])
    history = alice.get(f"/api/sessions/{session}/history", params={"limit": 50}).json()
    assert history[0]["checkpoint_id"] == state["checkpoint_id"]  # newest first
    assert alice.get(f"/api/sessions/{session}/history", params={"limit": 1}).json() == history[:1]
    # The oldest checkpoint of the second turn's predecessor holds only the first message.
    older = [alice.get(f"/api/sessions/{session}/history/{cp['checkpoint_id']}").json() for cp in history[1:]]
    user_counts = [len([m for m in s["messages"] if m["role"] == "user"]) for s in older]
    assert user_counts.count(1) >= 1 and max(user_counts) <= 2
    missing = alice.get(f"/api/sessions/{session}/history/not-a-checkpoint")
    assert missing.status_code == 404


def test_clear_keeps_the_session_and_delete_removes_it(alice: httpx.Client) -> None:
    session = new_session(alice, "borrar luego")
    cleared = alice.post(f"/api/sessions/{session}/clear")
    assert cleared.status_code == 200 and cleared.json() == {"status": "cleared", "session_id": session}
    assert alice.get(f"/api/sessions/{session}").json()["messages"] == []
    # The session is still usable after a clear.
    alice.post("/api/chat", json={"message": "de nuevo", "session_id": session})
    again = alice.get(f"/api/sessions/{session}").json()["messages"]
    assert [m["content"] for m in again if m["role"] == "user"] == ["de nuevo"]
    deleted = alice.delete(f"/api/sessions/{session}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert alice.get(f"/api/sessions/{session}").status_code == 404
    assert session not in alice.get("/api/sessions").json()["sessions"]


def test_unknown_session_is_404_and_approval_without_pending_is_409(alice: httpx.Client) -> None:
    assert alice.get("/api/sessions/never-used").status_code == 404
    session = new_session(alice, "nada pendiente")
    decision = {"proposal_id": "p1", "decision": "approve"}
    response = alice.post(f"/api/sessions/{session}/approval", json=decision)
    assert response.status_code == 409
    assert "waiting for your approval" in response.json()["detail"]
    bad = alice.post(f"/api/sessions/{session}/approval", json={"proposal_id": "p1", "decision": "maybe"})
    assert bad.status_code == 422 and "decision" in error_text(bad)


def test_each_user_has_their_own_portfolio(alice: httpx.Client, bob: httpx.Client) -> None:
    mine, theirs = alice.get("/api/portfolio").json(), bob.get("/api/portfolio").json()
    assert mine["account_id"] != theirs["account_id"]
    assert mine["balance"] > 0
