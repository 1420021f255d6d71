"""`langgraph dev` (langgraph-cli, in-memory runtime) serves the copilot as Studio sees it, driven by the SDK.

A real `langgraph dev` process on a free port, with its blocking-call detector on: the graph and its
schemas are served, a slash-command trade reaches the approval interrupt (LangGraph's human-in-the-loop
shape), `accept` places one paper order on Studio's own account and `edit` sends the trade back through
the gate. No model: slash commands only, and the model URL points at a closed port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from langgraph_sdk import get_client

from graph.studio import STUDIO_PREFIX
from server.in_thread import free_port
from tests.support import ROOT
from tests.support.graph import GOOD, shared_market
from tools.broker.ledger import Keys
from tools.market.clock import ManualClock

LANGGRAPH = ROOT / ".venv" / "bin" / "langgraph"
STARTUP_SECONDS = 60


def scratch_config(folder: Path) -> Path:
    """The project's langgraph.json with its "./" paths made absolute, usable from `folder`."""
    config = json.loads((ROOT / "langgraph.json").read_text())
    config["dependencies"] = [str(ROOT / d) for d in config["dependencies"]]
    config["graphs"] = {name: str(ROOT / spec) for name, spec in config["graphs"].items()}
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def dev_server(
    redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """`langgraph dev` on a free port (from a scratch folder: it keeps its own state in .langgraph_api/)."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REDIS__PREFIX": key_prefix,
        "DATA_DIR": str(tmp_path / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
        "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: no model
        "REPLAY__START": GOOD.isoformat(),
        "RISK__MIN_CONFIDENCE": "0",
        "RISK__BLOCKED_AMD_PHASES": "[]",
        "RISK__BLOCK_AGAINST_SIGNAL": "false",
        "LANGSMITH_TRACING": "false",
    }
    log = tmp_path / "langgraph-dev.log"
    args = [str(LANGGRAPH), "dev", "--port", str(port), "--no-browser", "--no-reload"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*args, "--config", str(scratch_config(tmp_path))],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start:\n" + log.read_text()[-3000:]
            time.sleep(0.3)
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def pending(client: Any, thread_id: str) -> dict[str, Any]:
    """The one interrupt the thread waits on (its value)."""
    state = await client.threads.get_state(thread_id)
    interrupts = state["interrupts"]
    assert len(interrupts) == 1, state
    return dict(interrupts[0]["value"])


async def test_langgraph_dev_serves_the_graph_and_resumes_standard_answers(
    dev_server: tuple[str, Path], redis_url: str, key_prefix: str, settings: Any
) -> None:
    url, log = dev_server
    client = get_client(url=url)
    [assistant] = await client.assistants.search(graph_id="copilot")
    graph = await client.assistants.get_graph(assistant["assistant_id"])
    assert {"load_context", "reason", "risk_gate", "human_approval", "execute"} <= {
        n["id"] for n in graph["nodes"]
    }
    schemas = await client.assistants.get_schemas(assistant["assistant_id"])
    assert "messages" in schemas["input_schema"]["properties"]
    assert "proposal" in schemas["state_schema"]["properties"]

    quote = await shared_market(settings, ManualClock(GOOD)).get_quote("XAUUSD")
    buy = f"/buy XAUUSD sl {quote.ask - 10:.2f} tp {quote.ask + 20:.2f}"

    # Thread 1: run to the interrupt, read it, accept.
    first = await client.threads.create()
    await client.runs.wait(
        first["thread_id"], "copilot", input={"messages": [{"role": "user", "content": buy}]}
    )
    request = await pending(client, first["thread_id"])
    assert request["action_request"]["action"] == "execute_trade"
    assert request["config"]["allow_accept"] and request["config"]["allow_edit"]
    assert request["action_request"]["args"]["size_lots"] == request["proposal"]["size_lots"] == 0.1
    await client.runs.wait(
        first["thread_id"], "copilot", command={"resume": {"type": "accept", "args": None}}
    )
    done = await client.threads.get_state(first["thread_id"])
    assert not done["interrupts"]
    assert any("EXECUTED" in str(m["content"]) for m in done["values"]["messages"])

    # Thread 2: edit the size; the gate prices it again and asks again; then respond (= reject).
    second = await client.threads.create()
    await client.runs.wait(
        second["thread_id"], "copilot", input={"messages": [{"role": "user", "content": buy}]}
    )
    shown = (await pending(client, second["thread_id"]))["action_request"]
    edited = {"action": shown["action"], "args": {**shown["args"], "size_lots": 0.05}}
    await client.runs.wait(
        second["thread_id"], "copilot", command={"resume": [{"type": "edit", "args": edited}]}
    )
    again = await pending(client, second["thread_id"])
    assert again["proposal"]["size_lots"] == 0.05
    assert again["proposal"]["proposal_id"] != shown["args"]["proposal_id"]
    # A plain word is not an answer: asked again, nothing cancelled.
    await client.runs.wait(second["thread_id"], "copilot", command={"resume": "approve"})
    assert "not understood" in (await pending(client, second["thread_id"]))["proposal"]["notice"]
    await client.runs.wait(
        second["thread_id"], "copilot", command={"resume": {"type": "response", "args": "not now"}}
    )
    assert not (await client.threads.get_state(second["thread_id"]))["interrupts"]

    # One paper order, on Studio's own account (its own key prefix), none on the web page's.
    redis = aioredis.from_url(redis_url, decode_responses=True)
    try:
        studio = Keys(f"{key_prefix}{STUDIO_PREFIX}", "paper")
        orders = await redis.lrange(studio.orders, 0, -1)
        assert len(orders) == 1 and len(await redis.hgetall(studio.positions)) == 1
        assert not await redis.exists(Keys(key_prefix, "paper").orders)
    finally:
        await redis.aclose()
    text = log.read_text(errors="replace")
    assert "Blocking call" not in text and "BlockingError" not in text, text[-3000:]
