"""Several `copilot serve` processes on one Redis behave as one service (real processes, real HTTP).

Server A runs two uvicorn workers, server B one: an approval requested on A is resumed on B, a doubled
approval across processes places one order, and every process sees the same paper account.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from server.in_thread import free_port
from tests.support.api_support import buy_command
from tests.support.serving import process_env, serve, wait_healthy


@pytest.fixture(scope="module")
def servers(
    redis_server: object, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    tmp = tmp_path_factory.mktemp("serve")
    env = process_env(
        redis_server.url,  # type: ignore[attr-defined]
        shared_data,
        tmp,
        **{
            # A trader's explicit /buy passes whatever the replayed market's signal says at this moment.
            "RISK__MIN_CONFIDENCE": "0",
            "RISK__BLOCKED_AMD_PHASES": "[]",
        },
    )
    procs, urls = [], []
    for workers in (2, 1):
        port, log = free_port(), tmp / f"serve-{workers}.log"
        procs.append((serve(port, env, workers, log), log))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, (proc, log) in zip(urls, procs, strict=True):
            wait_healthy(url, proc, log)
        yield urls
    finally:
        for proc, _ in procs:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        for proc, log in procs:
            assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]


def test_approval_requested_on_one_process_is_resumed_on_another(servers: list[str]) -> None:
    a, b = (httpx.Client(base_url=url, timeout=60) for url in servers)
    session = f"s-{uuid.uuid4().hex[:8]}"
    asked = a.post("/api/chat", json={"message": buy_command(a), "session_id": session}).json()
    proposal = asked["pending_approval"]
    assert proposal is not None, asked
    # Process B sees the pending approval A's worker checkpointed, and executes it.
    assert (
        b.get(f"/api/sessions/{session}").json()["pending_approval"]["proposal_id"] == proposal["proposal_id"]
    )
    decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
    done = b.post(f"/api/sessions/{session}/approval", json=decision)
    assert done.status_code == 200 and done.json()["response"].startswith("EXECUTED"), done.text
    again = a.post(f"/api/sessions/{session}/approval", json=decision)  # the same approval, on process A
    assert again.status_code == 200 and again.json()["replayed"] is True, again.text
    assert "EXECUTED" in again.json()["response"]
    positions = a.get("/api/portfolio").json()["positions"]
    assert [p["size"] for p in positions] == [proposal["size_lots"]]


def test_a_doubled_approval_across_processes_places_one_order(servers: list[str]) -> None:
    clients = [httpx.Client(base_url=url, timeout=60) for url in servers]
    before = len(clients[0].get("/api/portfolio").json()["positions"])
    session = f"s-{uuid.uuid4().hex[:8]}"
    asked = clients[0].post("/api/chat", json={"message": buy_command(clients[0]), "session_id": session})
    proposal_id = asked.json()["pending_approval"]["proposal_id"]
    decision = {"proposal_id": proposal_id, "decision": "approve"}

    def approve(i: int) -> tuple[int, bool]:
        answer = clients[i % 2].post(f"/api/sessions/{session}/approval", json=decision)
        return answer.status_code, bool(answer.json().get("replayed"))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(approve, range(6)))
    # Queued one behind the other: one places the order, the five others answer with its outcome.
    assert [code for code, _ in answers] == [200] * 6, answers
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 5, answers
    after = clients[1].get("/api/portfolio").json()["positions"]
    assert len(after) == before + 1
