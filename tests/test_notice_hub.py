"""tools/notices.NoticeHub on a real Redis: one blocking reader per process feeds every page of every
account, each notice once per page, a page resuming from its own cursor gets the missed ones first, and the
reader's XREADs do not grow with the number of pages."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from tools.notices import Notice, NoticeHub, notices_key


async def add(r: aioredis.Redis, prefix: str, account: str, n: int) -> str:
    return str(await r.xadd(notices_key(prefix, account), {"kind": "fill", "data": json.dumps({"n": n})}))


async def xreads(r: aioredis.Redis) -> int:
    return int((await r.info("commandstats")).get("cmdstat_xread", {}).get("calls", 0))


async def collect(page, count: int) -> list[Notice]:  # type: ignore[no-untyped-def]
    got: list[Notice] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            got += await page.next(1.0)
    return got


async def test_one_reader_feeds_every_page_once_and_a_resumed_page_catches_up(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    before = await add(redis_client, key_prefix, "ann", 0)
    missed = [await add(redis_client, key_prefix, "ann", n) for n in (1, 2)]  # after `before`
    hub = NoticeHub(redis_client, key_prefix, block_ms=2000)
    calls = await xreads(redis_client)
    async with hub.subscribe("ann", before) as resumed, hub.subscribe("bob", "0-0") as bobs:
        fresh = [hub.subscribe("ann", missed[-1]) for _ in range(20)]
        pages = [await page.__aenter__() for page in fresh]
        assert [n.id for n in await resumed.catch_up()] == missed  # a reconnect's missed notices
        for page in pages:
            assert await page.catch_up() == []
        assert hub.pages == 22
        live = [await add(redis_client, key_prefix, "ann", n) for n in range(3, 8)]
        bob = await add(redis_client, key_prefix, "bob", 100)
        for page in [*pages, resumed]:
            assert [n.id for n in await collect(page, 5)] == live  # each once, in order
        assert [n.id for n in await collect(bobs, 1)] == [bob]
        assert bobs.queue.empty()  # none of ann's notices reached bob's page
        for page in fresh:
            await page.__aexit__(None, None, None)
    # 21 catch-ups, then the hub's own reads: a handful, not one per page per notice (that would be 105+).
    assert await xreads(redis_client) - calls < 21 + 15
    assert hub.pages == 0
    await hub.aclose()
