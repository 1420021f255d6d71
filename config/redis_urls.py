"""The Redis URL grammar the settings accept (tools.redis_clients opens them): what redis-py opens
(redis://, rediss://, unix://), a Sentinel address or Cluster nodes:

    redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name[/db]
    redis+cluster://host:port[,host:port…]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

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
