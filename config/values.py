"""Checks of settings values that a type alone cannot say: keys and user ids, URLs, the replay start."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from urllib.parse import urlsplit

from config.redis_urls import check_url

# The candle timeframes the market data, the signals and the settings know.
Timeframe = Literal["1m", "5m", "15m", "1h", "4h", "1d"]
TIMEFRAMES: tuple[str, ...] = get_args(Timeframe)
# User and session ids become parts of Redis keys and thread ids: plain characters only (one rule, used by the
# HTTP API's validation too).
ID_PATTERN = r"^[A-Za-z0-9_.@\-]{1,128}$"
AUTO_START_BEFORE_END = timedelta(days=30)  # replay.start "auto": this long before the history's end
# What an X-API-Key header or a bearer token can carry unchanged: visible ASCII, no spaces (HTTP trims them).
_KEY = re.compile(r"[\x21-\x7e]+")
_USER = re.compile(ID_PATTERN)
USER_ID_RULE = "1-128 letters, digits or . _ @ - (it names the user's threads and account in Redis)"


def check_api_keys(api_keys: dict[str, str]) -> dict[str, str]:
    """server.api_keys: every key presentable in a header, every user id one the thread ids can hold.
    The messages never repeat a key (they are secrets); they name the user instead."""
    for number, (key, user) in enumerate(api_keys.items(), start=1):
        if not _USER.fullmatch(user):
            raise ValueError(f"user id {user!r} (key #{number}) is not valid: {USER_ID_RULE}")
        if not _KEY.fullmatch(key):
            what = "empty" if not key else "not visible ASCII without spaces"
            raise ValueError(f"the key of user {user!r} (key #{number}) is {what}; a key is 1+ visible ASCII "
                             "characters, no spaces")  # fmt: skip
    return api_keys


def check_metrics_key(metrics_key: str | None, api_keys: dict[str, str]) -> None:
    """server.metrics_key: presentable as a bearer token, and no user's key (a user would read it all)."""
    if metrics_key is None:
        return
    if not _KEY.fullmatch(metrics_key):
        raise ValueError("server.metrics_key: must be 1+ visible ASCII characters, no spaces")
    if metrics_key in api_keys:
        raise ValueError("server.metrics_key: must differ from every key in server.api_keys")


def check_redis_url(url: str | None) -> str | None:
    """redis_url: empty = embedded Redis; else a URL redis-py can open (redis://, rediss://, unix://) or a
    Sentinel address (redis+sentinel://host:port,host:port/master-name: tools.redis_clients)."""
    if url:
        try:
            check_url(url)
        except ValueError as exc:
            raise ValueError(
                f"{exc}, e.g. redis://localhost:6379/0 or redis+sentinel://s1:26379,s2:26379/mymaster"
            ) from None
    return url


def check_service_url(url: str) -> str:
    """services.*_url: empty = the embedded implementation; else an http(s) URL with a host."""
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ValueError(
            "expected empty (embedded) or an http:// or https:// URL, e.g. http://ml-engine:8000"
        )
    return url


def check_replay_start(start: str) -> str:
    """replay.start: 'auto' or an ISO datetime (whether it is inside the history is checked with the data)."""
    try:
        replay_start(start, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    except ReplayStartError:
        raise ValueError("expected 'auto' or an ISO UTC datetime such as 2026-07-01T08:00") from None
    return start


def check_telegram_chats(chats: dict[int, str], api_keys: dict[str, str]) -> None:
    """telegram.allowed_chats: every chat maps to a user of server.api_keys ("local" when there are none)."""
    users = set(api_keys.values()) or {"local"}
    for chat, user in chats.items():
        if user not in users:
            known = ", ".join(sorted(users))
            raise ValueError(
                f"telegram.allowed_chats: chat {chat} maps to {user!r}, not a user of server.api_keys "
                f"(users: {known})"
            )


class ReplayStartError(ValueError):
    """replay.start (REPLAY__START) is not 'auto' or an ISO time inside the loaded history; says which."""


def replay_start(start: str, history_start: datetime, history_end: datetime) -> datetime:
    """Resolve settings.replay.start ("auto" or an ISO UTC datetime) inside [history_start, history_end]."""
    if start.strip().lower() == "auto":
        return max(history_end - AUTO_START_BEFORE_END, history_start)
    try:
        value = datetime.fromisoformat(start.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReplayStartError(
            f"replay.start (REPLAY__START): expected 'auto' or an ISO UTC datetime, got {start!r}"
        ) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not history_start <= value <= history_end:
        raise ReplayStartError(
            f"replay.start (REPLAY__START): {value:%Y-%m-%d %H:%M} UTC is outside the loaded history "
            f"({history_start:%Y-%m-%d %H:%M} to {history_end:%Y-%m-%d %H:%M} UTC)"
        )
    return value
