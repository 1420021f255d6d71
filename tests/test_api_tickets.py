"""Tickets are numbered per account over the whole API: one trader's numbers tell nothing of another's
trades, and a ticket only ever names a position of the account that asks (close, modify, history)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api_support import ApiServer, as_user, buy_command, user_keys


@pytest.fixture(scope="module")
def url(serve_api: ApiServer) -> str:
    return serve_api("tickets", server={"api_keys": user_keys("ann", "bob")})


def approve(client: httpx.Client, session: str, message: str) -> dict:
    asked = client.post("/api/chat", json={"message": message, "session_id": session}).json()
    proposal = asked["pending_approval"]
    assert proposal is not None, asked["response"]
    decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
    return client.post(f"/api/sessions/{session}/approval", json=decision).json()


def test_a_second_traders_first_ticket_is_one_and_tickets_stay_in_their_account(url: str) -> None:
    with as_user(url, "ann") as ann, as_user(url, "bob") as bob:
        anns = [approve(ann, "t-ann", buy_command(ann))["order"]["ticket"] for _ in range(2)]
        bobs = [approve(bob, "t-bob", buy_command(bob))["order"]["ticket"] for _ in range(3)]
        assert anns == [1, 2] and bobs == [1, 2, 3]
        # Ann's "/close 3" names no position of hers: refused by the gate, bob's #3 untouched.
        said = ann.post("/api/chat", json={"message": "/close 3", "session_id": "t-ann"}).json()
        assert said["pending_approval"] is None and "no open position with ticket 3" in said["response"]
        assert "open tickets: 1, 2" in said["response"]
        # Ann's "/modify 3" likewise; her "/close 1" closes her own #1, not bob's.
        said = ann.post("/api/chat", json={"message": "/modify 3 sl 1", "session_id": "t-ann"}).json()
        assert said["pending_approval"] is None and "no open position with ticket 3" in said["response"]
        closed = approve(ann, "t-ann", "/close 1")
        assert closed["order"]["status"] == "executed", closed
        assert [p["ticket"] for p in ann.get("/api/portfolio").json()["positions"]] == [2]
        assert [p["ticket"] for p in bob.get("/api/portfolio").json()["positions"]] == [1, 2, 3]
        assert [t["ticket"] for t in ann.get("/api/trades").json()["trades"]] == [1]
        assert bob.get("/api/trades").json()["trades"] == []
