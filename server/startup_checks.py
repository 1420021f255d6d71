"""Before a command starts its work: REDIS_URL answers with its modules, the port is free, the log file.

Each failure is a StartupError whose one-line message names the setting to change.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from config import Settings
from tools.redis_clients import sync_client

CONNECT_SECONDS = 3.0
# A harmless command per module the checkpointer and the ledger need (JSON and Search; Redis 8 has both).
MODULE_PROBES = {"JSON": ("JSON.TYPE", "copilot:startup-probe"), "Search": ("FT._LIST",)}


class StartupError(RuntimeError):
    """Something outside the settings' values stops the command; the message is one line naming the key."""


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def check_redis(settings: Settings) -> None:
    """REDIS_URL: a Redis answers there and has the JSON and Search modules (nothing to check when embedded:
    the copilot starts that one itself with the modules)."""
    if settings.embedded_redis:
        return
    url = redacted(settings.effective_redis_url)
    client = sync_client(
        settings.effective_redis_url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=CONNECT_SECONDS
    )
    try:
        client.ping()
        missing = [name for name, probe in MODULE_PROBES.items() if not _answers(client, probe)]
    except AuthenticationError as exc:
        raise StartupError(f"REDIS_URL: the Redis at {url} refused the login: {exc}") from None
    except RedisError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StartupError(
            f"REDIS_URL: no Redis answers at {url} ({reason}); "
            "start it, or unset REDIS_URL for the embedded one"
        ) from None
    finally:
        client.close()
    if missing:
        raise StartupError(
            f"REDIS_URL: the Redis at {url} lacks the {' and '.join(missing)} module(s) the copilot needs; "
            "use Redis 8 or Redis Stack 7.4"
        )


def _answers(client: redis.Redis, probe: tuple[str, ...]) -> bool:
    try:
        client.execute_command(*probe)
    except ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return False
        raise
    return True


def listen_port(host: str, port: int) -> int:
    """The port `copilot serve` will listen on (port 0: a free one picked now), refusing one it cannot bind:
    in use (server.port) or an address this machine does not have (server.host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"server.host: cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            key = "server.port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "server.host"
            raise StartupError(
                f"{key}: cannot listen on {host}:{port}: {exc.strerror}; choose another with --host/--port "
                "or SERVER__HOST/SERVER__PORT"
            ) from None
        return int(sock.getsockname()[1])


def check_log_file(settings: Settings) -> None:
    """logging.file: its folder can be made and the file appended to (each worker opens it at start)."""
    if not settings.logging.file:
        return
    path = Path(settings.logging.file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise StartupError(
            f"logging.file: cannot write {path}: {exc.strerror}; choose another path, or empty for no file"
        ) from None
