"""The fault tests' machinery: real server processes (tests/support/fault_server.py) on a Redis Stack of
their own, killed with kill -9 at chosen points, and the invariants every trial checks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from server.in_thread import free_port
from tests.support import ROOT
from tests.support.api_support import buy_command
from tests.support.serving import wait_healthy
from tools.keys import AccountKeys, SessionKeys
from tools.redis_embedded import EmbeddedRedis


@dataclass
class Cluster:
    """One Redis, a clean server B, and server A restarted with a fault point for each trial."""

    redis: EmbeddedRedis
    env: dict[str, str]
    tmp: Path
    rng: random.Random
    b_url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    users: Iterator[str] = field(default_factory=lambda: (f"u{i}" for i in range(1000)))

    @property
    def prefix(self) -> str:
        return self.env["REDIS__PREFIX"]

    def start(
        self, point: str = "", pause: float = 0.0, points: dict[str, str] | None = None
    ) -> tuple[str, subprocess.Popen[bytes], Path]:
        port = free_port()
        marker = self.tmp / f"marker-{port}"
        env = {**self.env, "FAULT_POINT": point, "FAULT_PAUSE": str(pause), "FAULT_MARKER": str(marker),
               "FAULT_PORT": str(port), "FAULT_POINTS": json.dumps(points or {})}  # fmt: skip
        log = self.tmp / f"server-{port}.log"
        args = [sys.executable, "-m", "tests.support.fault_server"]
        out = log.open("wb")
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log, "server")
        return url, proc, marker

    def client(self, url: str, user: str) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": f"key-{user}"})

    def sync_redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"the run never reached its fault point ({path.name})"
        time.sleep(0.01)


def propose(client: httpx.Client, session: str) -> dict[str, object]:
    # Wide levels (the gate sizes the trade to 1 % at risk): the replayed market moves in real time while a
    # trial runs, and a $10 stop may be crossed before the recovery re-checks the trade.
    command = buy_command(client, sl_usd=60.0, tp_usd=120.0)
    asked = client.post("/api/chat", json={"message": command, "session_id": session})
    assert asked.status_code == 200, asked.text
    proposal = asked.json()["pending_approval"]
    assert proposal is not None, asked.json()["response"]
    return dict(proposal)


def settle(cluster: Cluster, client: httpx.Client, session: str, seconds: float = 60) -> dict[str, object]:
    """Touch the session until no run holds it and nothing is left to complete; its final state."""
    deadline = time.monotonic() + seconds
    while True:
        state = client.get(f"/api/sessions/{session}")
        assert state.status_code == 200, state.text
        body = dict(state.json())
        thread = f"{client.headers['X-API-Key'][4:]}:{session}"
        with cluster.sync_redis() as r:  # no run holds it, and no chat turn is left noted (graph.recovery)
            notes = SessionKeys(cluster.prefix, thread)
            busy = r.exists(notes.lease) or r.exists(notes.turn)
        if not body["interrupted_run"] and not busy:
            return body
        assert time.monotonic() < deadline, f"session {session} never settled: {body}"
        time.sleep(0.2)


def check_trial(cluster: Cluster, user: str, session: str, proposal_id: str, state: dict[str, object]) -> str:
    """The invariants of one trial; returns what became of the approved proposal."""
    keys = AccountKeys(cluster.prefix, f"paper-{user}")
    with cluster.sync_redis() as r:
        records = [json.loads(o) for o in r.lrange(keys.orders, 0, -1)]
        trades = r.hlen(keys.positions) + r.llen(keys.closed)  # open, or since closed at SL/TP
    filled = [o for o in records if o.get("key") == proposal_id and o.get("status") == "filled"]
    assert len(filled) <= 1, f"duplicate orders for {proposal_id}: {filled}"
    assert trades == len([o for o in records if o.get("status") == "filled"]), "a position without its order"
    tool_says = [str(m["content"]) for m in state["messages"] if m["role"] == "tool"]  # type: ignore[attr-defined,index]
    executed_said = [t for t in tool_says if t.startswith("EXECUTED")]
    if filled:
        assert len(executed_said) == 1, f"ledger has the order, the session says: {tool_says}"
        assert not any("nothing executed" in t.lower() for t in tool_says), tool_says
        assert state["pending_approval"] is None
        return "executed"
    assert not executed_said, f"the session says executed, the ledger has no order: {tool_says}"
    if state["pending_approval"] is not None:  # re-quoted, or a retry of an unconfirmed send
        return "pending re-approval"
    # The re-check at execution blocked the trade (the market crossed its stop meanwhile): the trader
    # is told that nothing was executed, which the ledger confirms. Never a silent drop.
    assert tool_says and tool_says[-1].startswith("BLOCKED") and "nothing was executed" in tool_says[-1], (
        tool_says
    )
    return "blocked at re-check"


def approve_and_fault(
    cluster: Cluster, a_url: str, marker: Path, user: str, kill: subprocess.Popen[bytes] | None
) -> tuple[str, str]:
    """Propose on A, approve through A's stream; at the fault point kill A (kill -9) or, without `kill`,
    close the stream (the client goes away). Returns (session, proposal id)."""
    session = f"s-{uuid.uuid4().hex[:8]}"
    marker.unlink(missing_ok=True)
    with cluster.client(a_url, user) as a:
        proposal_id = str(propose(a, session)["proposal_id"])
        decision = {"proposal_id": proposal_id, "decision": "approve"}
        with a.stream("POST", f"/api/sessions/{session}/approval/stream", json=decision) as response:
            assert response.status_code == 200
            wait_for(marker)
            time.sleep(cluster.rng.uniform(0, 0.3))
            if kill is not None:
                kill9(kill)
        # Leaving the block closed the connection (if A still lived) while the run was at its fault point.
    return session, proposal_id


def wait_for_audit(cluster: Cluster, kind: str, thread: str, seconds: float = 60) -> None:
    """Read the audit trail only (touching the session would complete the run itself)."""
    deadline = time.monotonic() + seconds
    with cluster.sync_redis() as r:
        while not any(
            e["kind"] == kind and e["thread_id"] == thread for _, e in r.xrange(f"{cluster.prefix}audit")
        ):
            assert time.monotonic() < deadline, f"no {kind} audit entry for {thread}"
            time.sleep(0.2)


@contextmanager
def open_cluster(shared_data: Path, tmp: Path, seed: int, **env: str) -> Iterator[Cluster]:
    """One Redis Stack of its own (these tests kill it), users u0..u199 with keys key-u<i>, server B up."""
    own_redis = EmbeddedRedis(port=free_port(), data_dir=tmp / "redis")  # this suite kills its Redis
    own_redis.start()
    keys = {f"key-u{i}": f"u{i}" for i in range(200)}
    base = {
        **os.environ,
        "REDIS_URL": own_redis.url,
        "REDIS__PREFIX": f"t{uuid.uuid4().hex[:10]}:",
        "DATA_DIR": str(tmp / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
        "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: slash commands only
        "SERVER__API_KEYS": json.dumps(keys),  # one user (and paper account) per trial
        "REPLAY__START": "2026-03-02T10:00:00Z",
        # A trader's explicit /buy passes whatever the replayed market's signal says at that moment; a
        # recovery minutes later still finds the price within the drift tolerance.
        "RISK__MIN_CONFIDENCE": "0",
        "RISK__BLOCKED_AMD_PHASES": "[]",
        "RISK__BLOCK_AGAINST_SIGNAL": "false",
        "RISK__MAX_PRICE_DRIFT_PCT": "5",
        **env,
    }
    base.pop("FAULT_POINT", None)
    base.pop("FAULT_POINTS", None)
    built = Cluster(own_redis, base, tmp, random.Random(seed))
    try:
        built.b_url = built.start()[0]
        yield built
    finally:
        for proc in built.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        own_redis.stop()
