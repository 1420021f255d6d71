"""One market clock across real processes: `copilot serve` owns the replay anchor; CLI commands run in another
terminal (without its REPLAY__START) read it and never move it, nor settle the paper ledger past it.

The bug this guards: a server started at REPLAY__START=2026-03-02T10:00:00Z with a BUY open, then
`copilot portfolio` without REPLAY__START replaced the anchor and closed the position at its stop in July.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import redis

from server.in_thread import free_port
from tests.support import ROOT
from tests.support.api_support import buy_command
from tests.support.serving import serve, wait_healthy
from tools.keys import replay_keys
from tools.redis_embedded import EmbeddedRedis

DEMO_START = "2026-03-02T10:00:00Z"


def copilot(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
    assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]


def test_cli_commands_never_move_a_running_servers_clock(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    anchor_key, server_key = replay_keys(prefix)
    terminal = {
        **{k: v for k, v in os.environ.items() if k not in ("REPLAY__START", "COPILOT_API_KEY")},
        "REDIS_URL": redis_server.url,
        "REDIS__PREFIX": prefix,
        "DATA_DIR": str(tmp_path / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
        "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: slash commands only
    }
    server_env = {
        **terminal,
        "REPLAY__START": DEMO_START,
        # A trader's explicit /buy passes whatever the replayed market's signal says at this moment.
        "RISK__MIN_CONFIDENCE": "0",
        "RISK__BLOCKED_AMD_PHASES": "[]",
        "RISK__BLOCK_AGAINST_SIGNAL": "false",
    }
    store = redis.Redis.from_url(redis_server.url)
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    proc = serve(port, server_env, 1, log)
    try:
        wait_healthy(url, proc, log)
        client = httpx.Client(base_url=url, timeout=60)
        asked = client.post(
            "/api/chat", json={"message": buy_command(client), "session_id": "s-clock"}
        ).json()
        proposal = asked["pending_approval"]
        assert proposal is not None, asked
        decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
        done = client.post("/api/sessions/s-clock/approval", json=decision)
        assert done.status_code == 200 and done.json()["response"].startswith("EXECUTED"), done.text
        [position] = client.get("/api/portfolio").json()["positions"]
        anchor = store.get(anchor_key)
        assert anchor is not None and json.loads(anchor)["start"] == DEMO_START

        shown = copilot(["portfolio"], terminal)  # through the server's API
        assert shown.returncode == 0, shown.stderr
        assert f"#{position['ticket']} BUY {position['size']} XAUUSD" in shown.stdout
        assert f"(from the server at {url})" in shown.stdout
        # Read-only commands on this machine's ledger and market: on the server's clock, which they keep.
        for args in (["portfolio", "--account", "paper"], ["clock", "show"]):
            ran = copilot(args, terminal)
            assert ran.returncode == 0, ran.stderr
            assert store.get(anchor_key) == anchor, args
            if args[0] == "portfolio":
                assert f"#{position['ticket']} BUY" in ran.stdout
            if args[0] == "clock":
                assert (
                    f"REPLAY__START={DEMO_START}" in ran.stdout and "market now: 2026-03-02 10:" in ran.stdout
                )
                assert f"server: running (pid {proc.pid}" in ran.stdout and url in ran.stdout
        refused = copilot(["clock", "reset"], terminal)
        assert refused.returncode == 2 and "a running server owns the replay clock" in refused.stderr
        assert store.get(anchor_key) == anchor
        assert [p["ticket"] for p in client.get("/api/portfolio").json()["positions"]] == [position["ticket"]]
    finally:
        stop(proc, log)
    assert store.get(server_key) is None  # released on exit: a restart does not join its own old clock

    # Restarted with the same REPLAY__START, the server plays the same moment again (the demo is repeatable).
    port, log = free_port(), tmp_path / "serve-again.log"
    proc = serve(port, server_env, 1, log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        again = json.loads(store.get(anchor_key) or "{}")
        assert again["history"] == "2026-03-02T10:00:00+00:00"
        assert again["wall"] > json.loads(anchor)["wall"]
    finally:
        stop(proc, log)
