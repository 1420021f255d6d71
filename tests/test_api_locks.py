"""The per-session run lock on the real Redis: exclusive, owner-only release, expiring, waitable."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from server.locks import RunLocks, SessionBusy


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
    lk = locks(redis_client, key_prefix, wait=True)
    order: list[str] = []
    first_holding = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with lk.hold("alice", "s1"):
            first_holding.set()
            await release_first.wait()
            order.append("first done")

    async def second() -> None:
        await first_holding.wait()
        async with lk.hold("alice", "s1"):
            order.append("second ran")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_holding.wait()
    await asyncio.sleep(0.05)  # let the second poll a few times while the first holds the lock
    assert order == []
    release_first.set()
    await asyncio.gather(*tasks)
    assert order == ["first done", "second ran"]
