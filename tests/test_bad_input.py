"""Input that must not pass, over real HTTP: bad approval edits answer 422 and bad slash numbers a clear chat
reply; nothing reaches the broker and (for decisions) the proposal stays pending, approvable afterwards."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api_support import ApiServer, as_user, buy_command, error_text, user_keys

USERS = user_keys("eva", "fede", "gala", "hugo")


@pytest.fixture(scope="module")
def url(serve_api: ApiServer) -> str:
    return serve_api("bad_input", server={"api_keys": USERS})


def chat(client: httpx.Client, session: str, message: str) -> httpx.Response:
    return client.post("/api/chat", json={"message": message, "session_id": session})


def propose(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    session = f"s-{uuid.uuid4().hex[:8]}"
    response = chat(client, session, buy_command(client))
    assert response.status_code == 200, response.text
    proposal = response.json()["pending_approval"]
    assert proposal is not None, response.text
    return session, dict(proposal)


def pending_id(client: httpx.Client, session: str) -> str | None:
    pending = client.get(f"/api/sessions/{session}").json()["pending_approval"]
    return None if pending is None else str(pending["proposal_id"])


def positions(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/api/portfolio").json()["positions"])


def raw_decision(client: httpx.Client, session: str, body: str, stream: bool = False) -> httpx.Response:
    """The body as written: Python's json reads NaN as nan, 1e400 as inf and big integers exactly."""
    path = f"/api/sessions/{session}/approval" + ("/stream" if stream else "")
    return client.post(path, content=body.encode(), headers={"Content-Type": "application/json"})


# Edits that do not fit the decision or are not edits:
# (name, decision, edits as raw JSON text, fragment of the 422 detail)
MISFIT_EDITS = [
    ("approve with edits", "approve", '{"size_lots": 0.01}', "edits are only for decision 'edit'"),
    ("reject with edits", "reject", '{"stop_loss": 1.5}', "edits are only for decision 'edit'"),
    ("edit without edits", "edit", "{}", "needs edits with at least one of"),
    ("unknown field", "edit", '{"size": 0.1}', "edits.size: Extra inputs are not permitted"),
    ("edits not an object", "edit", "[0.1]", "edits: Input should be a valid dictionary"),
]
# An edit of one field to a value it must refuse:
# (name, field, the value as raw JSON text, what the 422 detail says the value should be)
BAD_VALUES = [
    ("NaN", "size_lots", "NaN", "a finite number"),
    ("Infinity", "take_profit", "Infinity", "a finite number"),
    ("1e400", "stop_loss", "1e400", "a finite number"),
    ("2**64", "size_lots", "18446744073709551616", "less than"),
    ("10**400", "size_lots", "1" + "0" * 400, "a valid"),
    ("price above bound", "take_profit", "1e8", "less than"),
    ("negative", "size_lots", "-0.1", "greater than 0"),
    ("zero", "stop_loss", "0", "greater than 0"),
    ("string number", "size_lots", '"0.1"', "a valid number"),
    ("boolean", "size_lots", "true", "a valid number"),
]
BAD_DECISIONS = MISFIT_EDITS + [
    (name, "edit", f'{{"{field}": {value}}}', f"edits.{field}: Input should be {should_be}")
    for name, field, value, should_be in BAD_VALUES
]


def test_bad_approval_edits_answer_422_and_keep_the_proposal(url: str) -> None:
    with as_user(url, "eva") as client:
        session, proposal = propose(client)
        pid = proposal["proposal_id"]
        for name, decision, edits, fragment in BAD_DECISIONS:
            for stream in (False, True):
                body = f'{{"proposal_id": "{pid}", "decision": "{decision}", "edits": {edits}, "reason": ""}}'
                response = raw_decision(client, session, body, stream)
                assert response.status_code == 422, (name, stream, response.status_code, response.text)
                assert fragment in error_text(response), (name, response.text)
                assert pending_id(client, session) == pid, name
        assert positions(client) == []
        # Intact means usable: a valid edit is still accepted and goes back through the gate.
        edited = client.post(
            f"/api/sessions/{session}/approval",
            json={"proposal_id": pid, "decision": "edit", "edits": {"size_lots": 0.01}},
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["pending_approval"]["size_lots"] == 0.01
        assert positions(client) == []


def test_clients_empty_edits_with_approve_still_work(url: str) -> None:
    """The web page and `copilot chat` send "edits": {} with approve and reject."""
    with as_user(url, "fede") as client:
        session, proposal = propose(client)
        body = {"proposal_id": proposal["proposal_id"], "decision": "approve", "edits": {}, "reason": ""}
        response = client.post(f"/api/sessions/{session}/approval", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["order"]["status"] == "executed"
        assert len(positions(client)) == 1


@pytest.mark.parametrize("given", ["a", "abc", "FIRST1", "FIRST7"])
def test_approve_with_a_short_id_is_refused_and_keeps_the_proposal(url: str, given: str) -> None:
    with as_user(url, "gala") as client:
        session, proposal = propose(client)
        pid = proposal["proposal_id"]
        # FIRSTn: the real id's first n characters, which a prefix comparison alone would accept.
        typed = pid[: int(given[-1])] if given.startswith("FIRST") else given
        response = chat(client, session, f"/approve {typed}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert "too short: give at least 8 characters of the id" in body["response"], body
        assert f"({pid[:8]})" in body["response"]  # the refusal shows the short id to type
        assert body["order"] is None and body["pending_approval"]["proposal_id"] == pid
        assert pending_id(client, session) == pid
        assert positions(client) == []
        # The proposal is still there to decide: reject it so the next parameter starts clean.
        chat(client, session, "/reject done")


def test_approve_with_the_short_id_approves(url: str) -> None:
    with as_user(url, "hugo") as client:
        session, proposal = propose(client)
        response = chat(client, session, f"/approve {proposal['proposal_id'][:8]}")
        assert response.status_code == 200, response.text
        assert response.json()["order"]["status"] == "executed", response.text
        assert response.json()["order"]["proposal_id"] == proposal["proposal_id"]
        assert len(positions(client)) == 1


BAD_SLASH = [
    ("/close 18446744073709551616", "/close: ticket must be at most 9007199254740991"),
    ("/modify 18446744073709551616 sl 5", "/modify: ticket must be at most"),
    ("/close " + "9" * 3900, "/close: ticket must be at most"),  # bounded before int() reads it
    ("/close ²", "/close: ticket must be a positive whole number"),
    ("/data XAUUSD 1h 99999999999999999999", "/data: BARS must be at most 500"),
    ("/data XAUUSD 1h 0", "/data: BARS must be a positive whole number"),
    ("/buy XAUUSD 1e400 sl 1 tp 2", "/buy: LOTS must be a finite number"),
    ("/buy XAUUSD 18446744073709551616 sl 1 tp 2", "/buy: LOTS must be at most 1,000"),
    ("/buy XAUUSD sl 1e8 tp 2", "/buy: SL must be at most 10,000,000"),
    ("/alert XAUUSD above 1e30 x", "/alert: PRICE must be at most 10,000,000"),
]


@pytest.mark.parametrize(("message", "fragment"), BAD_SLASH)
def test_bad_slash_numbers_get_a_clear_reply_and_place_nothing(url: str, message: str, fragment: str) -> None:
    with as_user(url, "eva") as client:
        session, _ = propose(client)
        response = chat(client, session, message)
        assert response.status_code == 200, response.text
        body = response.json()
        assert fragment in body["response"], body
        assert body["order"] is None and body["tools_used"] == []
        assert positions(client) == []


def test_a_bad_slash_command_keeps_the_pending_proposal(url: str) -> None:
    with as_user(url, "eva") as client:
        session, proposal = propose(client)
        assert chat(client, session, "/close 18446744073709551616").status_code == 200
        assert pending_id(client, session) == proposal["proposal_id"]


def test_nan_body_is_not_echoed_as_invalid_json(url: str) -> None:
    """The 422 for a NaN edit is itself valid JSON (no bare NaN in the detail)."""
    with as_user(url, "eva") as client:
        session, proposal = propose(client)
        pid = proposal["proposal_id"]
        body = f'{{"proposal_id": "{pid}", "decision": "edit", "edits": {{"size_lots": NaN}}}}'
        response = raw_decision(client, session, body)
        assert response.status_code == 422
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"bare {c} in the response"))
