"""Approvals that survive faults: real server processes on a real Redis, killed (kill -9) or cut off at the
worst moments of an approval, then touched again.

For every trial: no duplicate order, no approved proposal left without either its order or a pending
re-approval, and the session's last words agree with the ledger. Crash points (tests/support/fault_server.py):
after the decision checkpoint, between the broker call and execute's checkpoint, after that checkpoint.
"""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import (
    Cluster,
    approve_and_fault,
    check_trial,
    kill9,
    open_cluster,
    propose,
    settle,
    wait_for,
    wait_for_audit,
)
from tools.keys import SessionKeys
from tools.redis_embedded import EmbeddedRedis

POINTS = ("before_send", "after_send", "after_execute")
TRIALS_PER_POINT = 5
LEASE_SECONDS = 6.0  # server.run_lease_seconds' default
SEED = int(os.environ.get("FAULT_SEED", str(random.randrange(1_000_000))))


@pytest.fixture(scope="module")
def cluster(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with open_cluster(shared_data, tmp_path_factory.mktemp("faults"), SEED) as built:
        yield built


@pytest.mark.parametrize("point", POINTS)
def test_kill9_at_each_crash_point_loses_no_approval_and_duplicates_nothing(
    cluster: Cluster, point: str
) -> None:
    """Server A killed at the point, the session then touched on server B (another process)."""
    print(f"FAULT_SEED={SEED}")
    outcomes = []
    for _ in range(TRIALS_PER_POINT):
        user = next(cluster.users)
        a_url, a_proc, marker = cluster.start(point, pause=120)
        session, proposal_id = approve_and_fault(cluster, a_url, marker, user, kill=a_proc)
        with cluster.client(cluster.b_url, user) as b:
            outcomes.append(check_trial(cluster, user, session, proposal_id, settle(cluster, b, session)))
        wait_for_audit(cluster, "recovered", f"{user}:{session}", seconds=0)  # B completed A's run
    # With a generous drift tolerance every recorded approval ends as its order (none re-quoted).
    assert outcomes == ["executed"] * TRIALS_PER_POINT


@pytest.mark.parametrize("point", (*POINTS, "decision_writes"))
def test_the_start_sweep_completes_a_killed_approval_untouched(cluster: Cluster, point: str) -> None:
    user = next(cluster.users)
    a_url, a_proc, marker = cluster.start(point, pause=120)
    session, proposal_id = approve_and_fault(cluster, a_url, marker, user, kill=a_proc)
    restarted, proc, _ = cluster.start()
    wait_for_audit(cluster, "recovered", f"{user}:{session}")
    with cluster.client(restarted, user) as client:
        assert (
            check_trial(cluster, user, session, proposal_id, settle(cluster, client, session)) == "executed"
        )
    kill9(proc)


@pytest.mark.parametrize("point", POINTS)
def test_a_dropped_stream_does_not_stop_the_run(cluster: Cluster, point: str) -> None:
    """The client closes /approval/stream at the fault point: the run goes on to its end on A."""
    a_url, a_proc, marker = cluster.start(point, pause=0.5)
    outcomes, threads = [], set()
    for _ in range(TRIALS_PER_POINT):
        user = next(cluster.users)
        session, proposal_id = approve_and_fault(cluster, a_url, marker, user, kill=None)
        threads.add(f"{user}:{session}")
        with cluster.client(a_url, user) as a:
            state = settle(cluster, a, session)
            outcomes.append(check_trial(cluster, user, session, proposal_id, state))
    assert outcomes == ["executed"] * TRIALS_PER_POINT
    with cluster.sync_redis() as r:  # the runs themselves finished: nothing had to be completed later
        recovered = {
            e["thread_id"] for _, e in r.xrange(f"{cluster.prefix}audit") if e["kind"] == "recovered"
        }
    assert not recovered & threads
    kill9(a_proc)


def kill9_redis(server: EmbeddedRedis) -> None:
    pid = int(server.pidfile.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.ping():
        assert time.monotonic() < deadline, "Redis survived kill -9"
        time.sleep(0.05)
    server.pidfile.unlink(missing_ok=True)


def test_redis_killed_mid_approval_answers_503_then_recovers(cluster: Cluster) -> None:
    """Redis is killed (kill -9) while an approved order is on its way, and started again on its AOF."""
    user = next(cluster.users)
    a_url, a_proc, marker = cluster.start("before_send", pause=2.0)
    session = f"s-{uuid.uuid4().hex[:8]}"
    with cluster.client(a_url, user) as a, cluster.client(cluster.b_url, user) as b:
        proposal_id = str(propose(a, session)["proposal_id"])
        time.sleep(1.2)  # the proposal's checkpoint is on disk (appendfsync everysec)
        decision = {"proposal_id": proposal_id, "decision": "approve"}
        with a.stream("POST", f"/api/sessions/{session}/approval/stream", json=decision) as response:
            assert response.status_code == 200
            wait_for(marker)
            kill9_redis(cluster.redis)
            down = [b.get("/api/portfolio"), b.get(f"/api/sessions/{session}"),
                    b.post("/api/chat", json={"message": "/portfolio", "session_id": session})]  # fmt: skip
            for answer in down:
                assert answer.status_code == 503, answer.text
                assert "Redis" in answer.json()["detail"] and int(answer.headers["retry-after"]) > 0
            health = b.get("/api/health").json()
            assert health["status"] == "degraded" and health["redis_status"] == "down"
            cluster.redis.start()
            events = response.read().decode()  # the run ends one way or another; the stream says how
            assert "event: final" in events or "event: error" in events
        assert b.get("/api/health").json()["redis_status"] == "ok"
        state = settle(cluster, b, session)
        check_trial(cluster, user, session, proposal_id, state)
        # Everything works again: the portfolio answers and the session takes messages.
        assert b.get("/api/portfolio").status_code == 200
        again = b.post("/api/chat", json={"message": "/portfolio", "session_id": session})
        assert again.status_code == 200, again.text
    kill9(a_proc)


def test_a_killed_workers_session_is_free_within_one_lease(cluster: Cluster) -> None:
    """A run killed mid-flight holds its session only until its lease lapses (no renewal from the dead)."""
    user = next(cluster.users)
    a_url, a_proc, marker = cluster.start("before_send", pause=120)
    session, _ = approve_and_fault(cluster, a_url, marker, user, kill=a_proc)
    killed_at = time.monotonic()
    with cluster.client(cluster.b_url, user) as b:
        busy = b.post("/api/chat", json={"message": "/portfolio", "session_id": session})
        if busy.status_code == 409:  # the dead run's lease has not lapsed yet: the answer says when to retry
            assert 0 < int(busy.headers["retry-after"]) <= LEASE_SECONDS
        with cluster.sync_redis() as r:
            while r.exists(SessionKeys(cluster.prefix, f"{user}:{session}").lease):
                time.sleep(0.05)
        freed_after = time.monotonic() - killed_at
        assert freed_after <= LEASE_SECONDS + 1.0, f"session still locked {freed_after:.1f}s after the kill"
        answer = b.post("/api/chat", json={"message": "/portfolio", "session_id": session})
        assert answer.status_code == 200 and answer.json()["order"]["status"] == "executed", answer.text
