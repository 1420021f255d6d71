"""Redis Cluster, measured: a real local 3-master cluster (redis-server --cluster-enabled yes on 3 free ports,
joined by `redis-cli --cluster create`), the copilot's clients from REDIS_URL=redis+cluster://…

These tests assert what happens today, so a change shows up. The project's own Redis parts run on the cluster:
every multi-key transaction of one account or session has one hash tag (tools/keys.py), so the paper ledger's
WATCH/MULTI, the leases' Lua scripts, the run notes, the alerts and the notices map to one slot each. The
approval cycle still does NOT run: langgraph-checkpoint-redis cannot create its search indexes (RediSearch of
Redis Stack 7.4 is per shard without a coordinator; redisvl sends FT.CREATE to one node, which answers MOVED).
The web feed's NoticeHub reads one slot's accounts only. README, "Running at scale: Redis topologies"."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from redis.exceptions import MovedError, RedisClusterException
from redisvl.exceptions import RedisSearchError

from config import Settings, load_settings
from graph.checkpointer import open_checkpointer
from graph.recovery.notes import OpenTurn, RunNotes
from graph.schemas import ChatResult
from tests.support.graph import GOOD
from tests.support.redis_topologies import LocalCluster, local_cluster
from tools.broker.ledger import Keys
from tools.key_migration import migrate_keys
from tools.locks import Leases
from tools.market.clock import ManualClock, shared_replay_clock, stored_anchor
from tools.notices import Notice, NoticeHub, read_notices
from tools.redis_clients import async_client
from tools.schemas import Alert, AlertRequest, OrderRequest
from tools.services import build_services


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


def cluster_settings(cluster: LocalCluster, shared_data: Path, tmp_path: Path) -> Settings:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes)
    return load_settings(
        redis_url=url,
        redis={"prefix": f"c{uuid.uuid4().hex[:8]}:"},
        data_dir=str(tmp_path / "data"),
        fallback_data_dir=str(shared_data),
        logging={"file": None},
    )


async def test_the_client_reaches_every_master(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    settings = cluster_settings(cluster, shared_data, tmp_path)
    client = async_client(settings.effective_redis_url)
    try:
        for i in range(30):  # 30 keys land on all 3 masters' slots
            await client.set(f"{settings.redis.prefix}k{i}", i)
        assert [await client.get(f"{settings.redis.prefix}k{i}") for i in range(30)] == [
            str(i) for i in range(30)
        ]
        assert len(client.get_primaries()) == 3
    finally:
        await client.aclose()


async def test_the_checkpointer_does_not_work_on_a_cluster(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    """langgraph-checkpoint-redis 0.5.2 detects cluster clients (its PR #56), but its checkpoints are found
    through RediSearch indexes, and Redis Stack's search module indexes only its own shard. FT.CREATE of an
    index (`checkpoint`, `checkpoint_write`, …) is sent to one node, which answers MOVED unless it owns the
    slot of the index's name: so which index fails depends on the prefix and the node asked (35 of 40 fresh
    prefixes in a probe here). When every index happens to be created, the latest checkpoint of each thread
    is read by its key, but listing a thread's checkpoints (a search: the history, pruning) fails (an
    AttributeError in the saver) or misses the threads whose checkpoints are on another shard."""
    moved = 0
    for _ in range(4):
        settings = cluster_settings(cluster, shared_data, tmp_path)
        try:
            async with open_checkpointer(settings) as saver:
                configs = [{"configurable": {"thread_id": f"u:s{i}", "checkpoint_ns": ""}} for i in range(6)]
                for config in configs:
                    await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
                assert all([await saver.aget_tuple(config) for config in configs])  # type: ignore[arg-type]
                listed: list[int | None] = []
                for config in configs:
                    try:
                        listed.append(len([c async for c in saver.alist(config)]))  # type: ignore[arg-type]
                    except AttributeError as exc:
                        assert "'Document' object has no attribute 'thread_id'" in str(exc)
                        listed.append(None)
                # A search sees one shard: the 6 threads' checkpoints (spread over 3) are not all listed.
                assert listed.count(1) < len(configs), listed
        except RedisSearchError as exc:
            assert re.fullmatch(
                r"Failed to create index '\w+:checkpoint\w*' on Redis: \d+ 127\.0\.0\.1:\d+", str(exc)
            ), exc
            assert isinstance(exc.__cause__, MovedError)
            moved += 1
    # Not one MOVED in 4 attempts would need every FT.CREATE of every attempt to reach its slot's owner.
    assert moved >= 1


async def test_the_paper_broker_places_closes_and_deduplicates_on_a_cluster(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    """The paper ledger's WATCH/MULTI (balance, positions, idempotency record, orders, fills, the notice) runs
    on the cluster: every key of an account has the account's hash tag (tools/keys.py). One account on each
    master, each placing an order, re-sending it (the first result, no second order) and closing it."""
    settings = cluster_settings(cluster, shared_data, tmp_path)
    client = async_client(settings.effective_redis_url)
    await client.initialize()  # type: ignore[attr-defined]
    services = await build_services(settings, client, ManualClock(GOOD))
    try:
        assert await migrate_keys(client, "other:") == 0  # nothing to move from older versions on a cluster
        prefix, slots, owners = settings.redis.prefix, set(), set()
        by_master: dict[str, str] = {}  # one account on each master
        for i in range(50):
            node = client.get_node_from_key(Keys(prefix, f"paper-{i}").account)  # type: ignore[attr-defined]
            by_master.setdefault(node.name, f"paper-{i}")
        assert len(by_master) == 3
        for account in by_master.values():
            keys = Keys(prefix, account)
            quote = await services.market.get_quote("XAUUSD")
            order = OrderRequest(
                symbol="XAUUSD",
                action="BUY",
                size=0.1,
                stop_loss=round(quote.ask - 10, 2),
                take_profit=round(quote.ask + 20, 2),
                account_id=account,
            )
            key = uuid.uuid4().hex
            placed = await services.broker.place_order(order, idempotency_key=key)
            assert placed.success and placed.ticket == 1, placed.message
            again = await services.broker.place_order(order, idempotency_key=key)
            assert again.duplicate and again.ticket == placed.ticket
            assert await client.llen(keys.orders) == 1  # one order for the two sends
            assert [p.ticket for p in (await services.broker.get_portfolio(account)).positions] == [1]
            closed = await services.broker.close_position(1, uuid.uuid4().hex, account)
            assert closed.success, closed.message
            portfolio = await services.broker.get_portfolio(account)
            assert portfolio.positions == [] and portfolio.balance != settings.broker.initial_balance
            assert await client.llen(keys.orders) == 2 and await client.llen(keys.closed) == 1
            # The notices written in the same MULTI as the fills, read back per account (XREAD).
            notices = await read_notices(client, prefix, account, "0-0", None)
            assert [n.data["kind"] for n in notices] == ["open", "manual"]
            assert {n.data["ticket"] for n in notices} == {"1"}
            slot = {await client.cluster_keyslot(k) for k in (keys.account, keys.idem(key), keys.notices)}
            assert len(slot) == 1  # the account's keys: one slot
            slots |= slot
            owners.add(client.get_node_from_key(keys.account).name)  # type: ignore[attr-defined]
        assert len(slots) == len(owners) == 3
        assert await services.broker.sync() == []  # the ticker's walk over every account works
        print(f"3 accounts on slots {sorted(slots)}, served by {len(owners)} of 3 masters")
    finally:
        await services.aclose()
        await client.aclose()


async def test_leases_notes_alerts_and_the_replay_clock_on_a_cluster(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    """The other multi-key operations: a session lease taken, renewed with a cancel request (a 2-key Lua
    script) and released; run notes written and forgotten (a 3-key DEL); an alert triggered with its notice
    in one WATCH/MULTI; the replay clock's anchor script (2 keys)."""
    settings = cluster_settings(cluster, shared_data, tmp_path)
    prefix = settings.redis.prefix
    client = async_client(settings.effective_redis_url)
    await client.initialize()  # type: ignore[attr-defined]
    try:
        leases = Leases(client, prefix, lease_seconds=30)
        token = await leases.acquire("ana", "s1")
        assert token is not None and await leases.acquire("ana", "s1") is None  # held
        assert await leases.request_cancel("ana", "s1")
        assert await leases.renew("ana", "s1", token) == 2  # renewed, and the cancel request consumed
        assert await leases.renew("ana", "s1", token) == 1
        assert await leases.release("ana", "s1", token)
        assert await leases.acquire("ana", "s1") is not None  # free again

        notes = RunNotes(client, prefix, 60)
        queued = await notes.queue_decision("ana:s1", {"decision": "approve"})  # type: ignore[typeddict-item]
        await notes.begin_turn("ana:s1", OpenTurn("hi", None, None))
        await notes.record("ana:s1", "p1", ChatResult(response="done"))  # type: ignore[call-arg]
        assert (await notes.fate("ana:s1", "p1")) is not None
        await notes.drop_decision("ana:s1", queued)
        assert await notes.queued_decision("ana:s1") is None
        await notes.forget("ana:s1")
        assert await notes.open_turn("ana:s1") is None and await notes.fate("ana:s1", "p1") is None

        clock = ManualClock(GOOD)
        services = await build_services(settings, client, clock)
        try:
            quote = await services.market.get_quote("XAUUSD")
            request = AlertRequest(symbol="XAUUSD", condition="above", price=round(quote.ask + 0.5, 2))
            alert = await services.alerts.set_alert(request, "paper-a", key="k1")
            fired: list[Alert] = []
            for _ in range(48):  # hours of the real history until the price is above the level
                clock.advance(timedelta(hours=1))
                fired = await services.alerts.check("paper-a")
                if fired:
                    break
            assert [a.alert_id for a in fired] == [alert.alert_id]
            notices = await read_notices(client, prefix, "paper-a", "0-0", None)
            assert [(n.kind, n.data["alert_id"]) for n in notices] == [("alert", alert.alert_id)]
        finally:
            await services.aclose()

        history = (GOOD - timedelta(days=30), GOOD)
        replay = await shared_replay_clock(client, settings, *history, owner=True)
        assert await stored_anchor(client, settings) is not None and replay.now() <= GOOD
    finally:
        await client.aclose()


async def test_the_notice_hub_reads_accounts_of_several_slots(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    """The web feed's NoticeHub reads the open pages' accounts with one blocking XREAD per slot (an XREAD of
    keys of two slots is refused on a cluster: "XREAD - all keys must map to the same key slot")."""
    settings = cluster_settings(cluster, shared_data, tmp_path)
    client = async_client(settings.effective_redis_url)
    await client.initialize()  # type: ignore[attr-defined]
    hub = NoticeHub(client, settings.redis.prefix, block_ms=200)
    accounts = ("paper-a", "paper-b", "paper-c")
    streams = [Keys(settings.redis.prefix, a).notices for a in accounts]
    assert len({await client.cluster_keyslot(s) for s in streams}) == 3
    with pytest.raises(RedisClusterException, match="XREAD - all keys must map to the same key slot"):
        await client.xread(dict.fromkeys(streams, "0-0"), count=1)
    try:
        async with contextlib.AsyncExitStack() as stack:
            pages = [await stack.enter_async_context(hub.subscribe(a, "0-0")) for a in accounts]
            for round_ in range(3):
                for stream in streams:
                    await client.xadd(stream, {"kind": "fill", "data": json.dumps({"n": round_})})
                for page in pages:
                    got: list[Notice] = []
                    for _ in range(20):
                        got += await page.next(1)
                        if got:
                            break
                    assert [n.data for n in got] == [{"n": round_}], (page.account, got, hub.failure)
            assert hub.failure is None
    finally:
        await hub.aclose()
        await client.aclose()
