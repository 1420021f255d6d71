"""Checkpoint pruning (graph.checkpointer.prune_thread) on the real Redis Stack: the official conformance
suite's prune tests, the saver's own key layout (the same keys as its `aprune`), the approval's checkpoints
spared, and a session through the copilot keeping its window while an approval still resumes."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.redis.aio import AsyncRedisSaver

from config import Settings, load_settings
from graph.checkpointer import open_checkpointer, prune_thread
from graph.threads import thread_id
from tests.support.graph import SESSION, USER, CopilotFactory, buy_levels, positions
from tools.services import Services


class PruningSaver(AsyncRedisSaver):
    """The project's saver with `aprune` answered by prune_thread, so the conformance suite's prune tests
    exercise it: keep_latest is keep_last=1, delete is delete_thread."""

    async def aprune(
        self,
        thread_ids: Sequence[str],
        *,
        strategy: str = "keep_latest",
        keep_last: int | None = None,
        max_results: int = 10000,
    ) -> None:
        for tid in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(tid)
            else:
                await prune_thread(self, tid, 1 if keep_last is None else keep_last)


def prefixed(redis_url: str) -> Settings:
    prefix = f"prune{uuid.uuid4().hex[:8]}:"
    return load_settings(redis_url=redis_url, redis={"prefix": prefix}, logging={"file": None})


async def test_conformance_of_pruning_and_the_methods_it_relies_on(redis_url: str) -> None:
    """What pruning relies on (put, put_writes, get_tuple, list by thread) and the suite's prune tests run on
    prune_thread: the newest checkpoint of each namespace and thread kept, with its writes; other threads
    untouched; an unknown or empty list a no-op."""

    @checkpointer_test(name="copilot-redis-pruning")
    async def factory() -> AsyncIterator[AsyncRedisSaver]:
        async with open_checkpointer(prefixed(redis_url)) as saver:
            saver.__class__ = PruningSaver
            yield saver

    report = await validate(factory, capabilities={"put", "put_writes", "get_tuple", "prune"})
    for name in ("put", "put_writes", "get_tuple"):
        result = report.results[name]
        assert result.passed and result.tests_failed == 0, (name, result.failures)
    pruning = report.results["prune"]
    assert pruning.tests_passed == 7, pruning.failures
    # The one failure is the saver's listing, not pruning: listing namespace "" also returns the child
    # namespace's checkpoint (each namespace did keep only its newest). The stock aprune fails it the same way
    # (and test_prune_empty_list_noop too: it refuses an empty list). The copilot uses the root namespace.
    [failure] = pruning.failures
    assert failure.startswith("test_prune_keep_latest_across_namespaces: assert 2 == 1"), failure
    assert "'checkpoint_ns': 'child" in failure, failure


async def chain(saver: AsyncRedisSaver, tid: str, n: int, channels: dict[int, str]) -> list[str]:
    """`n` checkpoints on the thread, each with one write (on `channels[i]`, else "messages"); their ids."""
    config: RunnableConfig = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    ids = []
    for i in range(n):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"x": i}
        checkpoint["channel_versions"] = {"x": i + 1}
        config = await saver.aput(config, checkpoint, {"source": "loop", "step": i}, {"x": i + 1})
        await saver.aput_writes(config, [(channels.get(i, "messages"), f"w{i}")], f"task{i}")
        ids.append(checkpoint["id"])
    return ids


async def keys_of(redis: aioredis.Redis, prefix: str, tid: str, ids: list[str]) -> set[str]:
    """The thread's keys with its name and checkpoint ids replaced by placeholders (comparable across
    threads)."""
    found = set()
    async for raw in redis.scan_iter(match=f"{prefix}*{tid}*", count=1000):
        key = str(raw).replace(tid, "THREAD")
        for i, cid in enumerate(ids):
            key = key.replace(cid, f"CP{i}")
        found.add(key)
    return found


async def test_the_same_keys_go_as_with_the_savers_own_aprune(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    """Without an approval among them, prune_thread deletes exactly what AsyncRedisSaver.aprune(keep_last)
    deletes: checkpoint documents, write documents and key-registry sets of the old checkpoints (this pins
    the saver's key layout, which prune_thread builds with the saver's own key functions)."""
    settings = prefixed(redis_url)
    prefix = settings.redis.prefix
    async with open_checkpointer(settings) as saver:
        mine, stock = "u:mine", "u:stock"
        mine_ids, stock_ids = await chain(saver, mine, 7, {}), await chain(saver, stock, 7, {})
        before = await keys_of(redis_client, prefix, mine, mine_ids)
        assert before == await keys_of(redis_client, prefix, stock, stock_ids)
        assert sum("CP0" in k for k in before) >= 2  # the checkpoint and its write at least
        assert await prune_thread(saver, mine, 3) == 4
        await saver.aprune([stock], keep_last=3)
        after = await keys_of(redis_client, prefix, mine, mine_ids)
        assert after == await keys_of(redis_client, prefix, stock, stock_ids)
        assert not [k for k in after if re.search(r"CP[0-3]\b", k)], after
        assert {f"CP{i}" for i in (4, 5, 6)} <= {m for k in after for m in re.findall(r"CP\d", k)}
        assert len(after) < len(before)
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config_of(mine))]
        assert listed == mine_ids[:3:-1]  # newest first
        assert await prune_thread(saver, mine, 3) == 0  # nothing more to do


def config_of(tid: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": tid, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def test_interrupt_and_decision_checkpoints_are_spared(redis_url: str) -> None:
    async with open_checkpointer(prefixed(redis_url)) as saver:
        tid = "u:approval"
        ids = await chain(saver, tid, 10, {2: "__interrupt__", 3: "decision"})
        assert await prune_thread(saver, tid, 2) == 6
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config_of(tid))]
        assert listed == [ids[9], ids[8], ids[3], ids[2]]
        for i, channel in ((2, "__interrupt__"), (3, "decision")):
            kept = await saver.aget_tuple(config_of(tid, ids[i]))
            assert kept is not None and [(w[1], w[2]) for w in kept.pending_writes or []] == [
                (channel, f"w{i}")
            ]
        assert await saver.aget_tuple(config_of(tid, ids[4])) is None
        assert await prune_thread(saver, tid, 0) == 0  # 0 = keep everything
        assert len([t async for t in saver.alist(config_of(tid))]) == 4


async def test_a_long_session_keeps_its_window_and_its_approval(
    make_copilot: CopilotFactory, services: Services, redis_client: aioredis.Redis, settings: Settings
) -> None:
    """Through the copilot (real graph, durability as in production): the trader gets a proposal, chats on
    while it waits, approves it: one order; the session then holds its newest 3 checkpoints plus the
    approval's, and its history and state read back."""
    levels = await buy_levels(services)
    async with make_copilot(["ok"], checkpoints={"keep_last": 3}) as copilot:
        asked = await copilot.chat(
            USER, SESSION, f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
        )
        proposal = asked.pending_approval
        assert proposal is not None, asked.response
        for turn in range(6):
            held = await copilot.chat(USER, SESSION, f"question {turn}")
            assert (
                held.pending_approval is not None
                and held.pending_approval["proposal_id"] == proposal["proposal_id"]
            )
        done = await copilot.decide(
            USER, SESSION, {"proposal_id": proposal["proposal_id"], "decision": "approve"}
        )
        assert "EXECUTED" in done.response and done.pending_approval is None
        for turn in range(6):
            await copilot.chat(USER, SESSION, f"after {turn}")
        history = await copilot.history(USER, SESSION, limit=100)
        assert await copilot.state(USER, SESSION) is not None
        again = await copilot.decide(
            USER, SESSION, {"proposal_id": proposal["proposal_id"], "decision": "approve"}
        )
        assert again.replayed and again.order == done.order
        assert copilot.checkpointer is not None
        tid = thread_id(USER, SESSION)
        checkpoints = [t async for t in copilot.checkpointer.alist(config_of(tid))]
        spared = [
            t
            for t in checkpoints
            if any(w[1] in ("__interrupt__", "decision") for w in t.pending_writes or [])
        ]
    assert len(await positions(services)) == 1
    # 3 newest + the checkpoints holding an interrupt or the decision (each waiting turn re-interrupts).
    assert len(history) == len(checkpoints) == 3 + len([t for t in spared if t not in checkpoints[:3]])
    assert any(w[1] == "decision" for t in spared for w in t.pending_writes or [])
    keys = [k async for k in redis_client.scan_iter(match=f"{settings.redis.prefix}checkpoint*{tid}*")]
    assert len(keys) < 40


async def test_only_the_newest_protected_checkpoints_stay(redis_url: str) -> None:
    """Interrupts and decisions older than the window stay only while among the newest `keep_protected` of
    them (the newest, a waiting approval's, always), so they no longer pile up with the session's length."""
    async with open_checkpointer(prefixed(redis_url)) as saver:
        tid = "u:many"
        channels = {
            1: "__interrupt__",
            3: "decision",
            5: "__interrupt__",
            7: "__interrupt__",
            11: "__interrupt__",
        }
        ids = await chain(saver, tid, 12, channels)
        assert await prune_thread(saver, tid, 2, keep_protected=2) == 9
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config_of(tid))]
        assert listed == [ids[11], ids[10], ids[7]]  # the newest two, then the next protected one
        assert await prune_thread(saver, tid, 1) == 1  # keep_protected defaults to keep_last, at least 2
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(config_of(tid))]
        assert listed == [ids[11], ids[7]]


async def test_pruning_runs_every_few_runs_and_the_session_stays_within_keep_last(
    make_copilot: CopilotFactory, redis_client: aioredis.Redis, settings: Settings
) -> None:
    """checkpoints.prune_every 3 with keep_last 6: pruned after runs 1, 3, 6 and 9 (counted in the session
    hash), each time down to 6 - 3 + 1 = 4, so the session never holds more than 6 after a run."""
    async with make_copilot(["ok"], checkpoints={"keep_last": 6, "prune_every": 3}) as copilot:
        assert copilot.checkpointer is not None
        tid = thread_id(USER, SESSION)
        counts = []
        for _ in range(9):
            await copilot.chat(USER, SESSION, "/portfolio")
            counts.append(len([t async for t in copilot.checkpointer.alist(config_of(tid))]))
        assert counts == [1, 2, 3, 4, 5, 4, 5, 6, 4]
        assert await redis_client.hget(f"{settings.redis.prefix}session:{tid}", "runs") == "9"
