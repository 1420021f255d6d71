"""The one place Redis clients are made (the app's, the checkpointer's, the CLI's, the start-up check's;
locks, notices, the ticker and the broker ledger use the client they are given).

A URL is what redis-py opens (redis://, rediss://, unix://), a Sentinel address or Cluster nodes:

    redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name[/db]
    redis+cluster://host:port[,host:port…]

The client then asks the Sentinels for the current primary on each new connection and follows a failover:
commands in flight while the primary is gone fail with a ConnectionError (MasterNotFoundError while no
Sentinel names one), which the API answers with 503 and Retry-After; after the failover new connections go to
the promoted replica. The password is the data nodes' (the Sentinels get none unless they share it).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from config.redis_urls import (
    cluster_nodes,
    is_cluster_url,
    is_sentinel_url,
    parse_sentinel_url,
)


def async_client(url: str, *, decode_responses: bool = True, **kwargs: Any) -> aioredis.Redis:
    """An asyncio client on `url` (Sentinel URLs follow the primary). `decode_responses=False` for the
    checkpointer, which expects bytes. A redis+cluster:// URL gives a RedisCluster (see README, "Redis
    Cluster": what works on it)."""
    if is_cluster_url(url):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in cluster_nodes(url)]
        return RedisCluster(startup_nodes=nodes, decode_responses=decode_responses, **kwargs)  # type: ignore[return-value]
    if not is_sentinel_url(url):
        return aioredis.from_url(url, decode_responses=decode_responses, **kwargs)
    address = parse_sentinel_url(url)
    sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinel = AsyncSentinel(address.sentinels, sentinel_kwargs=sentinel_kwargs)
    client: aioredis.Redis = sentinel.master_for(
        address.master, decode_responses=decode_responses, **address.connection_kwargs(), **kwargs
    )
    return client


def sync_client(url: str, *, decode_responses: bool = False, **kwargs: Any) -> redis.Redis:
    """The blocking counterpart (the start-up check, scripts)."""
    if is_cluster_url(url):
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in cluster_nodes(url)]
        return RedisCluster(startup_nodes=nodes, decode_responses=decode_responses, **kwargs)  # type: ignore[return-value]
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, decode_responses=decode_responses, **kwargs)
    address = parse_sentinel_url(url)
    sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    sentinel = Sentinel(address.sentinels, sentinel_kwargs=sentinel_kwargs)
    client: redis.Redis = sentinel.master_for(
        address.master, decode_responses=decode_responses, **address.connection_kwargs(), **kwargs
    )
    return client


def is_cluster(client: Any) -> bool:
    """Whether `client` is an asyncio Redis Cluster client (keys of one command must then share a slot)."""
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def reply_text(value: Any) -> str:
    """A Redis reply as str, whether or not the client was made with decode_responses."""
    return value.decode() if isinstance(value, bytes) else str(value)


def reply_text_or_none(value: Any) -> str | None:
    """`reply_text`, keeping a missing value (a nil reply) as None."""
    return None if value is None else reply_text(value)
