"""The per-session run lease on the real Redis: exclusive, owner-only release, short and renewed, waitable,
cancellable from another process."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests.support.locks import WatchedLocks
from tools.locks import LeaseHeld, Leases


def locks(client: aioredis.Redis, prefix: str, wait: bool = False) -> Leases:
    return Leases(client, prefix, lease_seconds=30, wait=wait, poll_seconds=0.01)


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
    key = f"{key_prefix}{{sess:alice:s1}}:lease"  # the session's hash tag (tools/keys.py)
    ttl_ms = await redis_client.pttl(key)
    # A crashed worker's lock frees itself: it always carries an expiry of at most one lease.
    assert 0 < ttl_ms <= 30_000


async def test_hold_raises_busy_and_releases_on_exit(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    async with lk.hold("alice", "s1"):
        with pytest.raises(LeaseHeld, match="held by another holder"):
            async with lk.hold("alice", "s1"):
                pass
    assert await redis_client.exists(lk.key("alice", "s1")) == 0


async def test_hold_releases_when_the_run_fails(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    with pytest.raises(RuntimeError):
        async with lk.hold("alice", "s1"):
            raise RuntimeError("graph crashed")
    assert await redis_client.exists(lk.key("alice", "s1")) == 0


async def test_renew_only_for_owner(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = locks(redis_client, key_prefix)
    token = await lk.acquire("alice", "s1")
    assert token is not None
    await redis_client.pexpire(lk.key("alice", "s1"), 1000)
    assert await lk.renew("alice", "s1", "not-mine") == 0
    assert await redis_client.pttl(lk.key("alice", "s1")) <= 1000
    assert await lk.renew("alice", "s1", token) == 1
    assert await redis_client.pttl(lk.key("alice", "s1")) > 1000


async def test_lease_is_renewed_while_held_and_lapses_when_its_holder_stops(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    lk = Leases(redis_client, key_prefix, lease_seconds=0.6, poll_seconds=0.01)
    async with lk.hold("alice", "s1") as token:
        await asyncio.sleep(1.5)  # longer than the lease: only renewal keeps it
        assert await redis_client.get(lk.key("alice", "s1")) == token
    # A holder that dies cannot renew: taken without a holder, the lease is gone after one period.
    assert await lk.acquire("alice", "s2") is not None
    await asyncio.sleep(0.8)
    assert await redis_client.exists(lk.key("alice", "s2")) == 0


async def test_busy_says_when_to_retry(redis_client: aioredis.Redis, key_prefix: str) -> None:
    lk = Leases(redis_client, key_prefix, lease_seconds=6)
    assert await lk.acquire("alice", "s1") is not None
    with pytest.raises(LeaseHeld) as busy:
        await lk.take("alice", "s1")
    assert 0 < busy.value.retry_after <= 6


async def test_cancel_request_reaches_the_holder(redis_client: aioredis.Redis, key_prefix: str) -> None:
    holder = Leases(redis_client, key_prefix, lease_seconds=0.3)
    other = Leases(redis_client, key_prefix, lease_seconds=0.3)  # another process
    assert not await other.request_cancel("alice", "s1")  # nothing runs: nothing to cancel
    started = asyncio.Event()

    async def run() -> None:
        token = await holder.take("alice", "s1")
        task = asyncio.current_task()
        assert task is not None
        async with holder.keep("alice", "s1", token, on_cancel=task):
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(run())
    await started.wait()
    assert await other.request_cancel("alice", "s1")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert await redis_client.exists(holder.key("alice", "s1")) == 0  # released on the way out


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
