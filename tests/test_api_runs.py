"""A run belongs to its session, not to the connection that started it: a dropped client leaves it running,
another client re-attaches to it, and stopping it is an explicit cancel (real HTTP, real Redis)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api_support import Script, api_settings, buy_command, running_app, sse_events
from tools.redis_embedded import EmbeddedRedis


@pytest.fixture
def script() -> Script:
    held = Script()
    held.release.clear()  # a "slow" message waits inside the model until the test releases it
    return held


@pytest.fixture
def urls(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path, script: Script
) -> Iterator[tuple[str, str]]:
    """Two app instances on one Redis (two server processes, as far as the session is concerned)."""
    settings = api_settings(redis_server.url, shared_data, tmp_path)
    with running_app(settings, script) as first, running_app(settings, script) as second:
        yield first, second


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def user_messages(client: httpx.Client, session: str) -> list[str]:
    messages = client.get(f"/api/sessions/{session}").json()["messages"]
    return [m["content"] for m in messages if m["role"] == "user"]


def test_a_dropped_stream_leaves_the_run_going_and_a_client_reattaches(
    urls: tuple[str, str], script: Script
) -> None:
    url, _ = urls
    session = sid()
    with httpx.Client(base_url=url, timeout=60) as client:
        body = {"message": "a slow question", "session_id": session}
        with client.stream("POST", "/api/chat/stream", json=body) as response:
            assert response.status_code == 200
            assert script.entered.wait(30), "the run never reached the model"
        # The client is gone; the run is still inside the model. A new client follows it from the start.
        with client.stream("GET", f"/api/sessions/{session}/run") as follower:
            assert follower.status_code == 200  # attached while the run is still inside the model
            script.release.set()
            follower.read()
        events = sse_events(follower)
        assert events[0][0] == "node" and events[-1][0] == "final", events
        assert events[-1][1]["response"] == "slow answer done"
        # And its result is in the session for anyone who did not re-attach.
        assert user_messages(client, session) == ["a slow question"]
        assert client.get(f"/api/sessions/{session}/run").status_code == 404  # nothing runs now


def test_a_json_client_that_goes_away_does_not_stop_its_run(urls: tuple[str, str], script: Script) -> None:
    url, _ = urls
    session = sid()
    with httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=0.5)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post("/api/chat", json={"message": "slow, then gone", "session_id": session})
    script.release.set()
    with httpx.Client(base_url=url, timeout=60) as client:
        follow = client.get(f"/api/sessions/{session}/run")  # the run may just have ended: both are fine
        assert follow.status_code in (200, 404)
        state = client.get(f"/api/sessions/{session}").json()
        replies = [m["content"] for m in state["messages"] if m["role"] == "assistant"]
        assert replies == ["slow answer done"], state


@pytest.mark.parametrize("where", ["same process", "other process"])
def test_cancel_stops_the_run_and_frees_the_session(
    urls: tuple[str, str], script: Script, where: str
) -> None:
    first, second = urls
    session = sid()
    canceller_url = first if where == "same process" else second
    with httpx.Client(base_url=first, timeout=60) as client, httpx.Client(base_url=canceller_url) as other:
        assert other.post(f"/api/sessions/{session}/cancel").status_code == 404  # no such session yet
        client.post("/api/chat", json={"message": "hello", "session_id": session})
        assert other.post(f"/api/sessions/{session}/cancel").status_code == 409  # nothing running
        result: dict[str, httpx.Response] = {}
        body = {"message": "slow, to be cancelled", "session_id": session}
        thread = threading.Thread(target=lambda: result.update(r=client.post("/api/chat", json=body)))
        thread.start()
        assert script.entered.wait(30)
        cancelled = other.post(f"/api/sessions/{session}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        expected = "cancelled" if where == "same process" else "cancelling"
        assert cancelled.json()["status"] == expected
        thread.join(30)
        assert result["r"].status_code == 409 and "cancelled" in result["r"].json()["detail"]
        # The cancelled turn is not resumed later: its message stays, unanswered; the session goes on.
        script.release.set()
        after = client.post("/api/chat", json={"message": "next", "session_id": session})
        assert after.status_code == 200, after.text
        assert user_messages(client, session) == ["hello", "slow, to be cancelled", "next"]
        state = client.get(f"/api/sessions/{session}").json()
        replies = [m["content"] for m in state["messages"] if m["role"] == "assistant"]
        assert replies == ["Echo: hello", "Echo: next"] and not state["interrupted_run"]


def test_an_approval_sent_while_a_question_runs_waits_for_it_then_executes(
    urls: tuple[str, str], script: Script
) -> None:
    """A question (a read-only turn) is running when the approval arrives, on another server process: the
    approval is queued behind it (enqueue), not refused; the question's answer says the card still waits;
    then the approval executes the proposal once. A second message meanwhile is refused (reject policy)."""
    first, second = urls
    session = sid()
    with (
        httpx.Client(base_url=first, timeout=60) as client,
        httpx.Client(base_url=second, timeout=60) as other,
    ):
        asked = client.post("/api/chat", json={"message": buy_command(client), "session_id": session}).json()
        proposal = asked["pending_approval"]
        assert proposal is not None, asked
        answers: dict[str, httpx.Response] = {}

        def ask() -> None:
            body = {"message": "a slow question about my proposal", "session_id": session}
            answers["question"] = client.post("/api/chat", json=body)

        question = threading.Thread(target=ask)
        question.start()
        assert script.entered.wait(30)  # the question is inside the model
        busy = other.post("/api/chat", json={"message": "/portfolio", "session_id": session})
        assert busy.status_code == 409 and int(busy.headers["retry-after"]) > 0

        def approve() -> None:
            decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
            answers["approval"] = other.post(f"/api/sessions/{session}/approval", json=decision)

        approval = threading.Thread(target=approve)
        approval.start()
        approval.join(1.0)
        assert approval.is_alive()  # queued behind the question, not answered 409
        script.release.set()
        question.join(30)
        approval.join(30)
        said = answers["question"].json()
        assert said["pending_approval"]["proposal_id"] == proposal["proposal_id"]
        assert "Still waiting for your decision" in said["response"]
        done = answers["approval"]
        assert done.status_code == 200 and done.json()["order"]["status"] == "executed", done.text
        portfolio = client.get("/api/portfolio").json()
        assert len(portfolio["positions"]) == 1
