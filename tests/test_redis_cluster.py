"""Redis Cluster, measured: a real local 3-master cluster (redis-server --cluster-enabled yes on 3 free ports,
joined by `redis-cli --cluster create`), the copilot's clients from REDIS_URL=redis+cluster://…

These tests assert what happens today, so a change in either result shows up: the approval cycle does NOT run
on a cluster. The checkpointer cannot create its search indexes (RediSearch of Redis Stack 7.4 is per shard
without a coordinator; redisvl sends FT.CREATE to one node, which answers MOVED), and the paper ledger's WATCH
spans keys of several slots. README, "Running at scale: Redis topologies", states the supported ones."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from redis.exceptions import MovedError, RedisClusterException
from redisvl.exceptions import RedisSearchError

from config import Settings, load_settings
from graph.checkpointer import open_checkpointer
from tests.support.graph import GOOD
from tests.support.redis_topologies import LocalCluster, local_cluster
from tools.market.clock import ManualClock
from tools.redis_clients import async_client
from tools.schemas import OrderRequest
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
    slot of the index's name: so which index fails depends on the prefix and the node asked. Should all of
    them be created, each lives on one shard and misses the checkpoints stored on the others. Over 4 fresh
    prefixes no attempt gives a checkpointer that finds its checkpoints."""
    moved = 0
    for _ in range(4):
        settings = cluster_settings(cluster, shared_data, tmp_path)
        try:
            async with open_checkpointer(settings) as saver:
                configs = [{"configurable": {"thread_id": f"u:s{i}", "checkpoint_ns": ""}} for i in range(6)]
                for config in configs:
                    await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})  # type: ignore[arg-type]
                found = [await saver.aget_tuple(config) for config in configs]  # type: ignore[arg-type]
            assert None in found, "every checkpoint was found: the cluster works now, update README"
        except RedisSearchError as exc:
            assert re.fullmatch(
                r"Failed to create index '\w+:checkpoint\w*' on Redis: \d+ 127\.0\.0\.1:\d+", str(exc)
            ), exc
            assert isinstance(exc.__cause__, MovedError)
            moved += 1
    # Not one MOVED in 4 attempts would need every FT.CREATE of every attempt to reach its slot's owner.
    assert moved >= 1


async def test_the_paper_ledger_watch_spans_slots(
    cluster: LocalCluster, shared_data: Path, tmp_path: Path
) -> None:
    """An order on the paper broker: its WATCH names the account's keys (`{prefix}paper:{account}:…`), which
    hash to different slots; redis-py refuses it before anything is written."""
    settings = cluster_settings(cluster, shared_data, tmp_path)
    client = async_client(settings.effective_redis_url)
    await client.initialize()  # type: ignore[attr-defined]
    services = await build_services(settings, client, ManualClock(GOOD))
    try:
        quote = await services.market.get_quote("XAUUSD")
        order = OrderRequest(
            symbol="XAUUSD",
            action="BUY",
            size=0.1,
            stop_loss=round(quote.ask - 10, 2),
            take_profit=round(quote.ask + 20, 2),
            account_id="paper-cluster",
        )
        with pytest.raises(RedisClusterException, match="WATCH - all keys must map to the same key slot"):
            await services.broker.place_order(order, idempotency_key=uuid.uuid4().hex)
        assert (await services.broker.get_portfolio("paper-cluster")).positions == []
    finally:
        await services.aclose()
        await client.aclose()
