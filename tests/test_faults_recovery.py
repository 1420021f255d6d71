"""After a crash the trader acts again: whatever they do first, a recorded approval ends as its order (or a
re-approval request with the reason), never abandoned, and never twice. Also: approvals racing messages, and
a chat turn cut by a kill answered at the next access.

Real server processes on a Redis Stack of their own (tests/support/faults.py). Kills land either at a
measured delay after the approve request (every 5 ms over 0-60 ms) or at a checkpoint boundary reached
through the fault launcher's hooks (tests/support/fault_server.py), many sessions per kill (one user each).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.faults import Cluster, check_trial, kill9, open_cluster, propose, settle, wait_for_audit
from tools.keys import AccountKeys

SEED = int(os.environ.get("FAULT_SEED", str(random.randrange(1_000_000))))
# Every 5 ms over 0-60 ms, then every 40 ms to 400 ms: on a loaded 2-core machine an approval is
# recorded only ~100+ ms after its request, so the wider grid reaches the recorded states too.
DELAYS_MS = (*range(0, 61, 5), *range(80, 401, 40))
ACTIONS = ("approve_again", "typed_approve", "portfolio", "question", "get_session")
BOUNDARIES = ("decision_writes", "before_send", "after_send", "execute_writes", "after_execute")
CHAT_TURNS = {"/portfolio": "get_session", "¿Qué dice la señal del oro?": "portfolio", "/help": "question"}
DECISIONS = ("approve_again", "typed_approve")


@pytest.fixture(scope="module")
def cluster(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with open_cluster(shared_data, tmp_path_factory.mktemp("recovery"), SEED) as built:
        yield built


def approval(proposal_id: str) -> dict[str, str]:
    return {"proposal_id": proposal_id, "decision": "approve"}


def act(client: httpx.Client, session: str, proposal_id: str, action: str) -> httpx.Response:
    """The trader's next action. A chat message refused as busy (the dead run's lease lasts up to one lease)
    is sent again after its Retry-After, as a client does; decisions are never refused (they queue)."""
    deadline = time.monotonic() + 30
    while True:
        if action == "approve_again":
            answer = client.post(f"/api/sessions/{session}/approval", json=approval(proposal_id))
        elif action == "get_session":
            answer = client.get(f"/api/sessions/{session}")
        else:
            message = {"typed_approve": f"/approve {proposal_id[:8]}", "portfolio": "/portfolio"}.get(
                action, "¿Cómo va el oro?"
            )
            answer = client.post("/api/chat", json={"message": message, "session_id": session})
        if answer.status_code != 409 or action in DECISIONS or time.monotonic() > deadline:
            return answer
        time.sleep(float(answer.headers.get("retry-after", "1")))


def fire(url: str, user: str, path: str, body: dict[str, str], at: float | None = None) -> threading.Thread:
    """Send one request from a thread (at monotonic time `at`); its answer is never read (the server dies)."""

    def send() -> None:
        with httpx.Client(base_url=url, timeout=5, headers={"X-API-Key": f"key-{user}"}) as client:
            if at is not None:
                time.sleep(max(0.0, at - time.monotonic()))
            try:
                client.post(path, json=body)
            except httpx.HTTPError:
                pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def after_the_kill(cluster: Cluster, user: str, session: str, proposal_id: str, action: str) -> str:
    """The action on server B, then the trial's invariants; what became of the approved proposal."""
    with cluster.client(cluster.b_url, user) as b:
        answer = act(b, session, proposal_id, action)
        assert answer.status_code == 200, f"{action}: {answer.status_code} {answer.text}"
        state = settle(cluster, b, session)
    outcome = check_trial(cluster, user, session, proposal_id, state)
    waiting = state["pending_approval"]
    if waiting is not None:  # the same card (or its re-quote), never a silently dropped one
        assert proposal_id in (waiting["proposal_id"], waiting["requote_of"]), waiting  # type: ignore[index]
    if action in DECISIONS:  # approving again is answered with the order, whatever the kill cut
        assert outcome in ("executed", "blocked at re-check"), (action, outcome, state)
    return outcome


def recorded(cluster: Cluster, thread: str) -> bool:
    """The approval reached the audit trail before the kill (the approval node ran)."""
    with cluster.sync_redis() as r:
        return any(
            e["kind"] == "decision" and e["thread_id"] == thread and '"approve"' in e["data"]
            for _, e in r.xrange(f"{cluster.prefix}audit")
        )


@pytest.mark.parametrize("action", ACTIONS)
def test_kill9_at_each_delay_after_the_approve_request_then_the_traders_next_action(
    cluster: Cluster, action: str
) -> None:
    """One kill per action: 22 sessions approved at staggered times, so the kill lands 0, 5, ... 60, 80,
    ... 400 ms after each one's approve request; then the trader's next action on server B."""
    a_url, a_proc, _ = cluster.start()
    trials = []
    for delay in DELAYS_MS:
        user, session = next(cluster.users), f"s-{uuid.uuid4().hex[:8]}"
        with cluster.client(a_url, user) as a:
            trials.append((user, session, str(propose(a, session)["proposal_id"]), delay))
    kill_at = time.monotonic() + 0.6
    senders = [
        fire(a_url, user, f"/api/sessions/{session}/approval", approval(pid), at=kill_at - delay / 1000)
        for user, session, pid, delay in trials
    ]
    time.sleep(max(0.0, kill_at - time.monotonic()))
    kill9(a_proc)
    for sender in senders:
        sender.join(10)
    reached = ["decided" if recorded(cluster, f"{u}:{s}") else "not decided" for u, s, _, _ in trials]
    with ThreadPoolExecutor(max_workers=4) as pool:  # one trader per session, acting at once
        ends = pool.map(lambda t: after_the_kill(cluster, t[0], t[1], t[2], action), trials)
        outcomes = Counter(zip(reached, ends, strict=True))
    print(f"FAULT_SEED={SEED} {action}: {dict(outcomes)}")  # the report's figures
    assert sum(outcomes.values()) == len(DELAYS_MS)


def test_kill9_at_each_checkpoint_boundary_then_each_next_action_and_a_cut_chat_turn(
    cluster: Cluster,
) -> None:
    """One kill: for each boundary × action a session paused exactly there by the launcher's hooks, and
    chat turns paused in `reason` (nothing of them is checkpointed yet); then each next action on B."""
    approvals = {(point, action): next(cluster.users) for point in BOUNDARIES for action in ACTIONS}
    chats = {message: next(cluster.users) for message in CHAT_TURNS}
    points = {user: point for (point, _), user in approvals.items()} | {
        u: "chat_reason" for u in chats.values()
    }
    a_url, a_proc, marker = cluster.start(pause=120, points=points)
    sessions = {}
    for key, user in approvals.items():
        session = f"s-{uuid.uuid4().hex[:8]}"
        with cluster.client(a_url, user) as a:
            sessions[key] = (session, str(propose(a, session)["proposal_id"]))
    for key, user in approvals.items():
        session, pid = sessions[key]
        fire(a_url, user, f"/api/sessions/{session}/approval", approval(pid))
    chat_sessions = {message: f"s-{uuid.uuid4().hex[:8]}" for message in CHAT_TURNS}
    for message, user in chats.items():
        fire(a_url, user, "/api/chat", {"message": message, "session_id": chat_sessions[message]})
    expected = [f"{approvals[k]}:{sessions[k][0]}" for k in approvals]
    expected += [f"{chats[m]}:{chat_sessions[m]}" for m in CHAT_TURNS]
    wait_for_lines(marker, len(expected))
    assert sorted(marker.read_text().split()) == sorted(expected)  # every run paused at its own point
    kill9(a_proc)
    outcomes: Counter[tuple[str, str]] = Counter()
    for (point, action), user in approvals.items():
        session, pid = sessions[point, action]
        outcome = after_the_kill(cluster, user, session, pid, action)
        assert outcome == "executed", (point, action, outcome)  # recorded at every boundary: carried out
        outcomes[point, outcome] += 1
    print(f"FAULT_SEED={SEED} boundaries: {dict(outcomes)}")
    for message, action in CHAT_TURNS.items():
        check_cut_turn(cluster, chats[message], chat_sessions[message], message, action)


def wait_for_lines(marker: Path, count: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while (len(marker.read_text().split()) if marker.exists() else 0) < count:
        assert time.monotonic() < deadline, f"only {count} runs were to reach their points: {marker}"
        time.sleep(0.05)


def check_cut_turn(cluster: Cluster, user: str, session: str, message: str, action: str) -> None:
    """The killed turn's message is answered at the next access (GET or another message), and said so."""
    with cluster.client(cluster.b_url, user) as b:
        answer = act(b, session, "", action)
        assert answer.status_code == 200, answer.text
        if action != "get_session":
            assert "was cut off when the server running it stopped" in answer.json()["response"], answer.text
        state = settle(cluster, b, session)
    said = [(m["role"], m["content"]) for m in state["messages"]]  # type: ignore[attr-defined]
    asked = said.index(("user", message))
    assert any(role == "assistant" and text for role, text in said[asked + 1 :]), said
    with cluster.sync_redis() as r:
        kinds = [
            e["kind"] for _, e in r.xrange(f"{cluster.prefix}audit") if e["thread_id"] == f"{user}:{session}"
        ]
    assert kinds.count("recovered_turn") == 1, kinds


RACING = {
    "approve_again": None,
    "typed_approve": "/approve {short}",
    "portfolio": "/portfolio",
    "question": "¿Sigue en pie mi propuesta?",
    "signal": "/signal XAUUSD 15m",
}
RACES_PER_KIND = 4


def race(cluster: Cluster, user: str, session: str, pid: str, kind: str) -> dict[str, httpx.Response]:
    """The approval and the other request released at the same moment (a barrier); their answers."""
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}
    text = RACING[kind]
    requests = {"approval": (f"/api/sessions/{session}/approval", approval(pid))}
    if text is None:
        requests["other"] = requests["approval"]
    else:
        requests["other"] = ("/api/chat", {"message": text.format(short=pid[:8]), "session_id": session})

    def send(name: str) -> None:
        path, body = requests[name]
        with cluster.client(cluster.b_url, user) as client:
            start.wait()
            answers[name] = client.post(path, json=body)

    threads = [threading.Thread(target=send, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_an_approval_racing_each_kind_of_message_is_never_lost(cluster: Cluster) -> None:
    """Approve and another message sent at the same moment: the approval is queued (never 409), the
    proposal is executed exactly once, and a read-only message leaves it pending until then."""
    results: Counter[tuple[str, int]] = Counter()
    for kind in list(RACING) * RACES_PER_KIND:
        user, session = next(cluster.users), f"s-{uuid.uuid4().hex[:8]}"
        with cluster.client(cluster.b_url, user) as b:
            pid = str(propose(b, session)["proposal_id"])
        answers = race(cluster, user, session, pid, kind)
        assert answers["approval"].status_code == 200, answers["approval"].text
        results[kind, answers["other"].status_code] += 1
        if kind in DECISIONS:  # decisions queue: both answered, one of them with the other's outcome
            assert answers["other"].status_code == 200, answers["other"].text
        else:  # a read-only message ran first (the card waited) or found the session busy (busy_policy)
            assert answers["other"].status_code in (200, 409), answers["other"].text
        with cluster.client(cluster.b_url, user) as b:
            assert check_trial(cluster, user, session, pid, settle(cluster, b, session)) == "executed"
    print(f"races: {len(RACING) * RACES_PER_KIND} trials, the other request's answers {dict(results)}")
    with cluster.sync_redis() as r:
        keys = Counter(
            json.loads(o)["key"]
            for key in r.scan_iter(AccountKeys(cluster.prefix, "*").orders)
            for o in r.lrange(key, 0, -1)
            if json.loads(o).get("status") == "filled"
        )
    assert keys and max(keys.values()) == 1, "duplicate orders"


# (how the approval is sent on A: the endpoint or a typed /approve, what the trader does next on B)
QUEUED = (
    *(("endpoint", action) for action in ("approve_again", "portfolio", "get_session", "sweep")),
    ("typed", "typed_approve"),
    ("typed", "get_session"),
)


def test_an_approval_queued_behind_a_running_turn_survives_a_kill9_of_its_server(cluster: Cluster) -> None:
    """The approval (the endpoint's, or a typed /approve) arrives on A while a chat turn of its session runs
    there, so it waits for the session; A is killed (kill -9) meanwhile. Whatever the trader does next on B
    (approve again, another message, a read of the session, or nothing: the sweep of a server started
    afterwards), the click is not lost: the proposal is executed, once."""
    users = {trial: next(cluster.users) for trial in QUEUED}
    sessions: dict[tuple[str, str], tuple[str, str]] = {}
    for trial, user in users.items():
        session = f"s-{uuid.uuid4().hex[:8]}"
        with cluster.client(cluster.b_url, user) as b:
            sessions[trial] = (session, str(propose(b, session)["proposal_id"]))
    a_url, a_proc, marker = cluster.start(pause=120, points={u: "chat_reason" for u in users.values()})
    for trial, user in users.items():
        fire(a_url, user, "/api/chat", {"message": "/portfolio", "session_id": sessions[trial][0]})
    wait_for_lines(marker, len(users))  # each session's turn holds it, paused in `reason`
    for (click, action), user in users.items():
        session, pid = sessions[click, action]
        if click == "endpoint":
            fire(a_url, user, f"/api/sessions/{session}/approval", approval(pid))
        else:
            fire(a_url, user, "/api/chat", {"message": f"/approve {pid[:8]}", "session_id": session})
    time.sleep(1.0)  # the approvals reach A and wait behind the turns; no answer comes (A dies)
    kill9(a_proc)
    for (click, action), user in users.items():
        if action != "sweep":
            session, pid = sessions[click, action]
            outcome = after_the_kill(cluster, user, session, pid, action)
            assert outcome == "executed", (click, action, outcome)
    restarted, proc, _ = cluster.start()  # then a server started now: its sweep completes the untouched one
    user, (session, pid) = users["endpoint", "sweep"], sessions["endpoint", "sweep"]
    wait_for_audit(cluster, "recovered_decision", f"{user}:{session}")
    with cluster.client(restarted, user) as client:
        state = settle(cluster, client, session)
    assert check_trial(cluster, user, session, pid, state) == "executed"
    kill9(proc)


def test_a_chat_turn_killed_after_setting_its_alert_sets_it_once_when_run_again(cluster: Cluster) -> None:
    """`/alert` runs its tool (the alert is stored), then A is killed (kill -9) before the turn's checkpoint.
    The next message on B runs the cut turn again from its checkpoint: the alert exists once, not twice."""
    user, session = next(cluster.users), f"s-{uuid.uuid4().hex[:8]}"
    a_url, a_proc, marker = cluster.start(pause=120, points={user: "chat_after_tool"})
    fire(a_url, user, "/api/chat", {"message": "/alert XAUUSD above 9876.5 cut turn", "session_id": session})
    wait_for_lines(marker, 1)

    def alerts() -> list[dict[str, object]]:
        with cluster.sync_redis() as r:
            stored = [json.loads(v) for v in r.hvals(AccountKeys(cluster.prefix, f"paper-{user}").alerts)]
        return [a for a in stored if a["price"] == 9876.5]

    assert len(alerts()) == 1  # set before the kill
    kill9(a_proc)
    with cluster.client(cluster.b_url, user) as b:
        answer = act(b, session, "", "portfolio")
        assert answer.status_code == 200, answer.text
        assert "was cut off when the server running it stopped" in answer.json()["response"], answer.text
        settle(cluster, b, session)
    assert len(alerts()) == 1, alerts()
