"""A run that holds its session for long is logged once with where it waits, so an operator can tell a stuck
await (a lock, a Redis call, the model) from a busy machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from graph.streaming import Event
from server.api import runs
from server.api.runs import RunRegistry
from server.metrics import Metrics
from tools.locks import Leases


async def wait_for_the_market(gate: asyncio.Event) -> None:
    await gate.wait()


async def test_a_slow_run_is_logged_with_its_await_chain(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "SLOW_RUN_SECONDS", 0.2)
    gate = asyncio.Event()

    async def events() -> AsyncIterator[Event]:
        yield {"event": "token", "data": {"text": "…"}}
        await wait_for_the_market(gate)
        yield {"event": "final", "data": {}}

    registry = RunRegistry(Leases(redis_client, "slowrun:", 6), Metrics())
    run = await registry.start("alice", "s1", "chat", events)
    await asyncio.sleep(0.5)
    gate.set()
    assert run.task is not None
    await run.task
    slow = [r.getMessage() for r in caplog.records if "still going" in r.getMessage()]
    assert len(slow) == 1, slow
    assert "run chat of session s1" in slow[0] and "['token']" in slow[0]
    chain = slow[0].split("waiting in: ")[1]
    assert (
        "events (tests/test_slow_runs.py" in chain and "wait_for_the_market (tests/test_slow_runs.py" in chain
    )
    assert chain.index("events (") < chain.index("wait_for_the_market"), chain  # outermost first


async def test_a_quick_run_is_not_logged(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "SLOW_RUN_SECONDS", 0.2)

    async def events() -> AsyncIterator[Event]:
        yield {"event": "final", "data": {}}

    registry = RunRegistry(Leases(redis_client, "quickrun:", 6), Metrics())
    run = await registry.start("alice", "s2", "chat", events)
    assert run.task is not None
    await run.task
    await asyncio.sleep(0.4)
    assert not [r for r in caplog.records if "still going" in r.getMessage()]
