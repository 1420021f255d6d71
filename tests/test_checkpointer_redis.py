"""Checkpoint capabilities the copilot relies on, on the real Redis Stack (official conformance suite)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.redis.aio import AsyncRedisSaver

from config import load_settings
from graph.checkpointer import open_checkpointer, ttl_config

# What the graph and the facade use: put/put_writes/get_tuple on every step, list with a limit for the
# checkpoint history, delete_thread for DELETE session. Not used (known failures of the stock saver):
# list with `before`, custom metadata keys, namespaces other than the root, prune.
RELIED_ON = {"put", "put_writes", "get_tuple", "delete_thread"}
LIST_TESTS_RELIED_ON = {"test_list_all", "test_list_by_thread", "test_list_ordering", "test_list_limit"}


async def test_conformance_of_the_capabilities_we_use(redis_url: str) -> None:
    @checkpointer_test(name="copilot-redis")
    async def factory() -> AsyncIterator[AsyncRedisSaver]:
        prefix = f"conf{uuid.uuid4().hex[:8]}:"
        settings = load_settings(redis_url=redis_url, redis={"prefix": prefix}, logging={"file": None})
        async with open_checkpointer(settings) as saver:
            yield saver

    report = await validate(factory, capabilities=RELIED_ON | {"list"})
    for name in RELIED_ON:
        result = report.results[name]
        assert result.passed and result.tests_failed == 0, (name, result.failures)
    listing = report.results["list"]
    failed = {f.split(":")[0] for f in listing.failures}
    assert listing.tests_passed >= len(LIST_TESTS_RELIED_ON)
    assert not failed & LIST_TESTS_RELIED_ON, failed


def test_ttl_is_converted_from_seconds_to_minutes() -> None:
    assert ttl_config(load_settings(redis={"ttl": 3600}, logging={"file": None})) == {
        "default_ttl": 60.0,
        "refresh_on_read": True,
    }
    assert ttl_config(load_settings(redis={"ttl": 0}, logging={"file": None})) is None


async def test_checkpoint_keys_carry_the_prefix_and_expire(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    prefix = f"ttl{uuid.uuid4().hex[:8]}:"
    settings = load_settings(
        redis_url=redis_url, redis={"prefix": prefix, "ttl": 120}, logging={"file": None}
    )
    async with open_checkpointer(settings) as saver:
        config = {"configurable": {"thread_id": "u:s", "checkpoint_ns": ""}}
        checkpoint = {"v": 1, "id": str(uuid.uuid4()), "ts": "2026-01-01T00:00:00+00:00",
                      "channel_values": {},
                      "channel_versions": {}, "versions_seen": {}, "pending_sends": []}  # fmt: skip
        await saver.aput(config, checkpoint, {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}checkpoint*")]
    assert keys
    ttls = [await redis_client.ttl(k) for k in keys]
    assert all(0 < t <= 120 for t in ttls), ttls


def test_the_cached_serializer_revives_what_the_stock_one_does() -> None:
    """The project's serializer only remembers classes: the same messages, types and ids come back, also
    for a constructor path that cannot be imported (refused the same way, every time)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer

    from graph.checkpointer import CachedConstructorSerializer

    messages = [
        HumanMessage("hola", id="h"),
        AIMessage("Oro LONG", id="a"),
        ToolMessage("{}", tool_call_id="t"),
    ]
    stock, cached = JsonPlusRedisSerializer(), CachedConstructorSerializer()
    stored = stock.dumps_typed({"messages": messages})
    for _ in range(2):  # the second pass is served from the cache
        assert cached.loads_typed(stored) == stock.loads_typed(stored)
    bogus = {"lc": 1, "type": "constructor", "id": ["no", "such", "module", "Thing"], "kwargs": {}}
    for _ in range(2):
        with pytest.raises(ValueError, match="Cannot import Thing"):
            cached._constructor_class(bogus)


async def test_workers_starting_together_on_a_fresh_redis_all_open_the_checkpointer(redis_url: str) -> None:
    """N workers starting at once race to create the search indexes (each checks, then creates): the ones
    that lose the race used to exit with "Index already exists". All must open, on one set of indexes."""
    prefix = f"race{uuid.uuid4().hex[:8]}:"
    settings = load_settings(redis_url=redis_url, redis={"prefix": prefix}, logging={"file": None})

    async def open_one() -> bool:
        async with open_checkpointer(settings) as saver:
            return await saver.checkpoints_index.exists()

    assert await asyncio.gather(*(open_one() for _ in range(6))) == [True] * 6
