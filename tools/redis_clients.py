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

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def connection_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"db": self.db}
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """redis+cluster://h1:p1[,h2:p2…] -> the start-up nodes (any one is enough; the rest are discovered)."""
    nodes = []
    for item in urlsplit(url).netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Cluster node {item!r}: expected host:port")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelAddress:
    """redis+sentinel://[user:password@]h1:p1,h2:p2/master[/db] -> its parts; ValueError when malformed."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (scheme {parts.scheme!r}): expected redis+sentinel://")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if credentials:
        user, _, secret = credentials.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"Sentinel address {item!r}: expected host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a Sentinel URL names the master after the hosts: redis+sentinel://h:26379/mymaster")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"Sentinel URL path {parts.path!r}: expected /master-name or /master-name/db")
    db = int(path[1]) if len(path) == 2 else 0
    ssl = parts.scheme == "rediss+sentinel"
    return SentinelAddress(sentinels, path[0], db, username, password, ssl)


def check_url(url: str) -> None:
    """ValueError when neither redis-py nor parse_sentinel_url can open `url`."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
    elif is_cluster_url(url):
        cluster_nodes(url)
    else:
        redis.connection.parse_url(url)


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
