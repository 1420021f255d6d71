"""tools/leader.py on a real Redis: one holder at a time, takeover after the holder stops renewing, the work
cancelled at once when the lease is lost, restarted when it raises, and the lease released on cancel."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis

from tools.leader import Leader


async def wait_until(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.02)


async def test_one_holder_runs_the_work_and_a_standby_takes_over_when_it_stops(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    key = f"{key_prefix}leader:job"
    running: list[str] = []

    def job(name: str):  # type: ignore[no-untyped-def]
        async def work() -> None:
            running.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(name)

        return work

    a, b = Leader(redis_client, key, 0.6, "a"), Leader(redis_client, key, 0.6, "b")
    ta = asyncio.create_task(a.run(job("a")))
    await wait_until(lambda: running == ["a"])
    tb = asyncio.create_task(b.run(job("b")))
    await asyncio.sleep(1.5)  # several renewal periods: b stays a standby
    assert running == ["a"] and a.leading and not b.leading
    holder = await redis_client.get(key)
    assert holder is not None and holder.split(":")[1].isdigit()  # host:pid:random
    ta.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ta
    assert await redis_client.get(key) != holder  # released (or already b's)
    await wait_until(lambda: running == ["b"])
    assert b.leading and not a.leading
    tb.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tb
    assert running == [] and await redis_client.exists(key) == 0


async def test_a_lost_lease_cancels_the_work_and_failing_work_is_started_again(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    key = f"{key_prefix}leader:job"
    starts, cancelled = [], []

    async def work() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("first pass fails")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    leader = Leader(redis_client, key, 0.6, "job")
    task = asyncio.create_task(leader.run(work))
    await wait_until(lambda: len(starts) == 2)  # restarted after raising, still leading
    await redis_client.set(key, "someone-else")  # another holder took it (e.g. after a stall)
    await wait_until(lambda: cancelled == [1])
    assert not leader.leading
    await asyncio.sleep(0.5)
    assert len(starts) == 2  # a standby now: the work is not started while another holds the lease
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await redis_client.get(key) == "someone-else"  # never deletes another holder's lease
