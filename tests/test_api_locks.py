"""The per-session run lock on the real Redis: exclusive, owner-only release, expiring, waitable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from tools.locks import RunLocks, SessionBusy


@dataclass
class WatchedLocks(RunLocks):
    """RunLocks that reports each refused acquire with the count so far: a waiter polling a held lock."""

    refusals: int = 0
    on_refused: Callable[[int], object] = lambda refusals: None

    async def acquire(self, user_id: str, session_id: str) -> str | None:
        token = await super().acquire(user_id, session_id)
        if token is None:
            self.refusals += 1
            self.on_refused(self.refusals)
        return token


def locks(client: aioredis.Redis, prefix: str, wait: bool = False) -> RunLocks:
    return RunLocks(client, prefix, expiry_seconds=30, wait=wait, poll_seconds=0.01)


async def test_second_acquire_refused_until_released(redis_client: aioredis.Redis, key_prefix: str) -> None:
    a, b = locks(redis_client, key_prefix), locks(redis_client, key_prefix)  # two "processes"
    token = await a.acquire("alice", "s1")
    assert token is not None
    assert await b.acquire("alice", "s1") is None
    assert await b.acquire("alice", "s2") is not None  # other sessions are independent
    assert await b.acquire("bob", "s1") is not None  # and other users' sessions too
    assert await a.release("alice", "s1", token)
    assert await b.acquire("alice", "s1") is not None


async def test_only_the_owner_token_releases(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    token = await lk.acquire("alice", "s1")
    assert token is not None
    assert not await lk.release("alice", "s1", "someone-elses-token")
    assert await redis_client.get(lk.key("alice", "s1")) == token


async def test_lock_key_has_prefix_and_expiry(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    await lk.acquire("alice", "s1")
    key = f"{key_prefix}lock:alice:s1"
    ttl_ms = await redis_client.pttl(key)
    # A crashed worker's lock frees itself: it always carries an expiry of at most run_lock_seconds.
    assert 0 < ttl_ms <= 30_000


async def test_hold_raises_busy_and_releases_on_exit(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    async with lk.hold("alice", "s1"):
        with pytest.raises(SessionBusy, match="already in progress"):
            async with lk.hold("alice", "s1"):
                pass
    assert await redis_client.exists(lk.key("alice", "s1")) == 0


async def test_hold_releases_when_the_run_fails(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    with pytest.raises(RuntimeError):
        async with lk.hold("alice", "s1"):
            raise RuntimeError("graph crashed")
    assert await redis_client.exists(lk.key("alice", "s1")) == 0


async def test_extend_only_for_owner(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    token = await lk.acquire("alice", "s1")
    assert token is not None
    await redis_client.pexpire(lk.key("alice", "s1"), 1000)
    assert not await lk.extend("alice", "s1", "not-mine")
    assert await redis_client.pttl(lk.key("alice", "s1")) <= 1000
    assert await lk.extend("alice", "s1", token)
    assert await redis_client.pttl(lk.key("alice", "s1")) > 1000


async def test_wait_policy_queues_behind_running_turn(redis_client: aioredis.Redis, key_prefix: str) -> None:
    polled = asyncio.Event()
    lk = WatchedLocks(redis_client, key_prefix, 30, wait=True, poll_seconds=0.01)
    lk.on_refused = lambda refusals: polled.set() if refusals >= 2 else None
    order: list[str] = []
    first_holding = asyncio.Event()
    release_first = asyncio.Event()
    first_token: list[str] = []

    async def first() -> None:
        async with lk.hold("alice", "s1") as token:
            first_token.append(token)
            first_holding.set()
            await release_first.wait()
            order.append("first done")

    async def second() -> None:
        async with lk.hold("alice", "s1"):
            order.append("second ran")

    first_task = asyncio.create_task(first())
    await first_holding.wait()
    second_task = asyncio.create_task(second())
    # Whichever comes first: the second polling a refused lock (right), or the second running (wrong).
    await asyncio.wait([asyncio.create_task(polled.wait()), second_task], return_when=asyncio.FIRST_COMPLETED)
    assert polled.is_set() and not second_task.done(), "the second turn did not wait for the lock"
    assert order == []
    assert await redis_client.get(lk.key("alice", "s1")) == first_token[0]  # still the first's lock
    release_first.set()
    await asyncio.gather(first_task, second_task)
    assert order == ["first done", "second ran"]
