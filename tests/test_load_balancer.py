"""Three real worker processes on one Redis behind a real HAProxy (server/scale.py, what `make scale` runs):
the live feed passes through unbuffered, a doubled approval places one order, users stay apart, fills and
alerts reach every page once, SL/TP closes happen once with one ticker per deployment, a standby takes the
ticker over after kill -9 of its holder, and a worker killed mid-run leaves its session to another worker.

The workers are tests/fault_server.py (the product's app with fault hooks that only worker 0 arms, for one
user); the market replays 60 times faster than the wall clock so SL/TP levels are reached within the test.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from server.scale import Deployment
from tests.support.api_support import buy_command
from tests.support.balancer import Page, client, closed_trades, filled_orders, wait_until
from tests.support.serving import process_env
from tools.keys import AccountKeys, SessionKeys

LEADER_LEASE = 3.0
RUN_LEASE = 6.0
PAUSED_USER = "u99"  # worker 0 pauses this user's approved run before the order is sent (then is killed)


@pytest.fixture(scope="module")
def lb(
    redis_server: object, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("lb")
    env = process_env(
        redis_server.url,  # type: ignore[attr-defined]
        shared_data,
        tmp,
        **{
            "SERVER__API_KEYS": json.dumps({f"key-u{i}": f"u{i}" for i in range(100)}),
            "SERVER__RUN_LEASE_SECONDS": str(RUN_LEASE),
            "SCALE__LEADER_LEASE_SECONDS": str(LEADER_LEASE),
            "BROKER__TICK_SECONDS": "0.5",
            "REPLAY__START": "2026-03-02T10:00:00Z",
            "REPLAY__SPEED": "60",
            "RISK__MIN_CONFIDENCE": "0",
            "RISK__BLOCKED_AMD_PHASES": "[]",
            "RISK__BLOCK_AGAINST_SIGNAL": "false",
            "RISK__MAX_PRICE_DRIFT_PCT": "5",
            "FAULT_PAUSE": "300",
        },
    )
    for name in ("FAULT_POINT", "FAULT_POINTS", "FAULT_MARKER"):
        env.pop(name, None)

    def worker_env(i: int, port: int) -> dict[str, str]:
        armed = {PAUSED_USER: "before_send"} if i == 0 else {}
        return {
            "FAULT_PORT": str(port),
            "FAULT_POINTS": json.dumps(armed),
            "FAULT_MARKER": str(tmp / f"m{i}"),
        }

    fault_server = [sys.executable, "-m", "tests.support.fault_server"]
    deployment = Deployment(env, tmp, workers=3, worker_env=worker_env, command=lambda port: fault_server)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def sync_redis(lb: Deployment) -> redis.Redis:
    return redis.Redis.from_url(lb.env["REDIS_URL"], decode_responses=True)


def prefix(lb: Deployment) -> str:
    return lb.env["REDIS__PREFIX"]


def propose(c: httpx.Client, session: str, sl_usd: float = 60.0, tp_usd: float = 120.0) -> str:
    asked = c.post(
        "/api/chat", json={"message": buy_command(c, sl_usd=sl_usd, tp_usd=tp_usd), "session_id": session}
    )
    assert asked.status_code == 200, asked.text
    proposal = asked.json()["pending_approval"]
    assert proposal is not None, asked.json()["response"]
    return str(proposal["proposal_id"])


def approve(c: httpx.Client, session: str, proposal_id: str) -> httpx.Response:
    decision = {"proposal_id": proposal_id, "decision": "approve"}
    return c.post(f"/api/sessions/{session}/approval", json=decision)


def worker_pids(lb: Deployment) -> list[int]:
    return [p.pid for p in lb.procs]


def ticker_holder(lb: Deployment) -> int | None:
    """The pid of the worker holding the ticker lease (tools/leader.py's token is host:pid:random)."""
    with sync_redis(lb) as r:
        token = r.get(f"{prefix(lb)}leader:ticker")
    return int(token.split(":")[1]) if token else None


def test_the_balancer_spreads_requests_and_the_live_feed_streams_through_unbuffered(lb: Deployment) -> None:
    """A fill made after the page opened reaches it through HAProxy while the stream is still open (it is not
    held back until the stream's end), and later frames follow on the same connection."""
    page = Page(lb.url, "u1").start()
    try:
        with client(lb.url, "u1") as c:
            session = f"s-{uuid.uuid4().hex[:8]}"
            answer = approve(c, session, propose(c, session))
            assert answer.status_code == 200 and answer.json()["order"]["status"] == "executed", answer.text
            ticket = str(answer.json()["order"]["ticket"])
        wait_until(
            "the fill on the open page", lambda: any(f["ticket"] == ticket for f in page.of("fill")), 30
        )
        connection, frames = page.connections, len(page.frames)
        wait_until("a later frame on the same stream", lambda: len(page.frames) > frames, 30)
        assert page.connections == connection  # the fill came while that stream was open
    finally:
        page.close()


def test_two_concurrent_approvals_of_one_proposal_through_the_balancer_place_one_order(
    lb: Deployment,
) -> None:
    user = "u2"
    with client(lb.url, user) as c:
        session = f"s-{uuid.uuid4().hex[:8]}"
        proposal_id = propose(c, session)
    start = threading.Barrier(2)

    def race(_: int) -> httpx.Response:
        with client(lb.url, user) as c:  # a connection each: HAProxy sends them to different workers
            start.wait()
            return approve(c, session, proposal_id)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(race, range(2)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert sorted(bool(a.json().get("replayed")) for a in answers) == [False, True], [a.text for a in answers]
    assert (
        len([o for o in filled_orders(lb.env["REDIS_URL"], prefix(lb), user) if o["key"] == proposal_id]) == 1
    )


def test_two_users_stay_apart_through_the_balancer(lb: Deployment) -> None:
    with client(lb.url, "u3") as ann, client(lb.url, "u4") as bob:
        session = f"s-{uuid.uuid4().hex[:8]}"
        proposal_id = propose(ann, session)
        for _ in range(3):  # whichever worker answers
            assert bob.get(f"/api/sessions/{session}").status_code == 404
            refused = approve(bob, session, proposal_id)
            assert refused.status_code in (404, 409), refused.text
        assert bob.get("/api/portfolio").json()["positions"] == []
        executed = approve(ann, session, proposal_id)
        assert executed.status_code == 200 and executed.json()["order"]["status"] == "executed", executed.text
        assert [len(c.get("/api/portfolio").json()["positions"]) for c in (ann, bob)] == [1, 0]
    assert filled_orders(lb.env["REDIS_URL"], prefix(lb), "u4") == []


def test_fills_sl_tp_closes_and_alerts_happen_once_with_one_ticker_and_reach_every_page_once(
    lb: Deployment,
) -> None:
    user = "u5"
    holder = ticker_holder(lb)
    assert holder in worker_pids(lb)  # one of the three leads the ticker
    pages = [Page(lb.url, user).start() for _ in range(3)]  # round-robin: on different workers
    try:
        with client(lb.url, user) as c:
            tickets = []
            for _ in range(2):
                session = f"s-{uuid.uuid4().hex[:8]}"
                answer = approve(c, session, propose(c, session, sl_usd=3, tp_usd=6))
                assert answer.json()["order"]["status"] == "executed", answer.text
                tickets.append(int(answer.json()["order"]["ticket"]))
            bid = float(c.get("/api/quote/XAUUSD").json()["bid"])
            said = c.post(
                "/api/chat", json={"message": f"/alert XAUUSD above {bid - 50} s", "session_id": "al"}
            )
            assert said.status_code == 200, said.text
            wait_until(
                "the positions to close at SL/TP", lambda: not c.get("/api/portfolio").json()["positions"]
            )
        closes = closed_trades(lb.env["REDIS_URL"], prefix(lb), user)
        assert sorted(t["ticket"] for t in closes) == tickets and {t["reason"] for t in closes} <= {
            "sl",
            "tp",
        }
        with sync_redis(lb) as r:  # the alert fires at a tick of its own, maybe after the closes
            key = AccountKeys(prefix(lb), f"paper-{user}").notices
            wait_until("the alert to fire", lambda: any(f["kind"] == "alert" for _, f in r.xrange(key)))
            time.sleep(4 * 0.5)  # four more ticks (BROKER__TICK_SECONDS): a second copy would be there now
            notices = r.xrange(key)
        kinds = sorted(json.loads(fields["data"]).get("kind", fields["kind"]) for _, fields in notices)
        assert len(notices) == 2 + 2 + 1, kinds  # two opens, two closes, one alert: each written once
        ids = {entry_id for entry_id, _ in notices}
        for page in pages:
            wait_until("every notice on every page", lambda p=page: ids <= set(p.ids), 60)
        for page in pages:
            assert {i: n for i, n in page.ids.items() if i in ids} == dict.fromkeys(ids, 1), page.ids
            assert len(page.of("alert")) == 1 and len(page.of("fill")) == 4
    finally:
        for page in pages:
            page.close()
    assert ticker_holder(lb) == holder  # the lease stayed with its holder throughout


def test_a_standby_takes_the_ticker_over_after_kill9_of_its_holder(lb: Deployment) -> None:
    holder = ticker_holder(lb)
    assert holder is not None
    index = worker_pids(lb).index(holder)
    with sync_redis(lb) as r:
        ttl = r.pttl(f"{prefix(lb)}leader:ticker")
    assert 0 < ttl <= LEADER_LEASE * 1000
    lb.kill9(index)
    wait_until("a standby to take the ticker over", lambda: ticker_holder(lb) not in (None, holder), 30)
    took = ticker_holder(lb)
    assert took in worker_pids(lb) and took != holder
    user = "u6"
    with client(lb.url, user) as c:  # the new holder closes positions at SL/TP (HAProxy skips the dead one)
        session = f"s-{uuid.uuid4().hex[:8]}"
        answer = approve(c, session, propose(c, session, sl_usd=3, tp_usd=6))
        assert answer.status_code == 200, answer.text
        wait_until(
            "the new ticker to close the position", lambda: not c.get("/api/portfolio").json()["positions"]
        )
    assert len(closed_trades(lb.env["REDIS_URL"], prefix(lb), user)) == 1
    lb.restart(index)
    assert ticker_holder(lb) == took  # the restarted worker is a standby now


def test_a_worker_killed_mid_run_leaves_its_session_to_another_worker_within_one_lease(
    lb: Deployment,
) -> None:
    """Worker 0 pauses the approved run before the order is sent; kill -9 it there. The trader approves again
    through the balancer: the decision queues behind the dead run's lease (at most one lease), then another
    worker carries the approval out: one order, and the session goes on."""
    marker = lb.workdir / "m0"
    marker.unlink(missing_ok=True)
    with client(lb.worker_url(0), PAUSED_USER) as w0:  # the run starts on worker 0 (its hooks are armed)
        session = f"s-{uuid.uuid4().hex[:8]}"
        proposal_id = propose(w0, session)

        def send() -> None:
            try:
                approve(w0, session, proposal_id)
            except httpx.HTTPError:
                pass  # worker 0 dies under it

        threading.Thread(target=send, daemon=True).start()
        wait_until("the run to reach its fault point", marker.exists, 60)
    with sync_redis(lb) as r:
        lease = r.pttl(SessionKeys(prefix(lb), f"{PAUSED_USER}:{session}").lease)
    assert 0 < lease <= RUN_LEASE * 1000  # what the next worker waits for at most
    lb.kill9(0)
    killed = time.monotonic()
    with client(lb.url, PAUSED_USER) as c:
        again = approve(c, session, proposal_id)
        assert again.status_code == 200, again.text
        print(f"kill -9 → the approval carried out by another worker: {time.monotonic() - killed:.1f} s")
        said = again.json()["response"]
        executed = "EXECUTED:" in said
        assert executed or "nothing was executed" in said, said
        follow = c.post("/api/chat", json={"message": "/portfolio", "session_id": session})
        assert follow.status_code == 200, follow.text
        state = c.get(f"/api/sessions/{session}").json()
    assert state["pending_approval"] is None and not state["interrupted_run"]
    orders = [
        o for o in filled_orders(lb.env["REDIS_URL"], prefix(lb), PAUSED_USER) if o["key"] == proposal_id
    ]
    assert len(orders) == (1 if executed else 0)
