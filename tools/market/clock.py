"""Clocks: manual (tests, demos), system (live services) and replay (history played as a live feed)."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from config.values import replay_start
from tools import keys
from tools.redis_clients import reply_text_or_none

if TYPE_CHECKING:
    from config import Settings


HEARTBEAT_MIN_SECONDS = 15.0
# Set by `copilot serve` for its workers: the URL their heartbeat advertises (and `copilot portfolio` reads).
SERVER_URL_ENV = "COPILOT_SERVER_URL"
log = logging.getLogger("copilot.clock")

# Anchor the clock unless a running server owns it, in one step, so N workers starting at once (or a
# `copilot clock reset` racing a server's start) converge on one anchor. KEYS: anchor, server heartbeat;
# ARGV: the fresh anchor, the heartbeat to write ('' = none), its TTL in ms. Answers {1, new, old anchor or
# nil} when it wrote, {0, stored anchor, heartbeat} when a running server owns the clock.
_ANCHOR_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
local server = redis.call('GET', KEYS[2])
if server and cur then
  return {0, cur, server}
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
return {1, ARGV[1], cur}
"""

# Drop the heartbeat only if it is the given server's (another server may be refreshing it).
_RELEASE_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, info = pcall(cjson.decode, cur)
  if ok and type(info) == 'table' and info['url'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
  end
end
return 0
"""


@with_config(ConfigDict(strict=True))
class ClockAnchor(TypedDict):
    """The replay anchor, stored as JSON at {prefix}{replay}:anchor: history time `history` (ISO) was shown at
    wall time `wall` (ISO), moving at `speed`; `start` is the replay.start it came from."""

    start: str
    speed: float
    history: str
    wall: str


class ServerHeartbeat(TypedDict, total=False):
    """A running server's heartbeat, stored as JSON at {prefix}{replay}:server. Written whole by _heartbeat;
    read leniently (a key may be missing from another writer's record)."""

    pid: int
    host: str
    url: str
    start: str
    speed: float


_ANCHOR = TypeAdapter(ClockAnchor)
_HEARTBEAT = TypeAdapter(ServerHeartbeat)
_Stored = TypeVar("_Stored", ClockAnchor, ServerHeartbeat)


def _require_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return value.astimezone(UTC)


def wall_now() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """Wall-clock time, for the live platform services."""

    def now(self) -> datetime:
        return wall_now()


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = _require_utc(value, "value")

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class ReplayClock:
    """History time = history_anchor + (wall time - wall_anchor) * speed, never past history_end."""

    def __init__(
        self,
        history_anchor: datetime,
        wall_anchor: datetime,
        speed: float,
        history_end: datetime,
        wall: Callable[[], datetime] = wall_now,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"replay speed must be positive, got {speed}")
        self.history_anchor = _require_utc(history_anchor, "history_anchor")
        self.wall_anchor = _require_utc(wall_anchor, "wall_anchor")
        self.history_end = _require_utc(history_end, "history_end")
        self.speed = speed
        self._wall = wall

    def now(self) -> datetime:
        elapsed = (self._wall() - self.wall_anchor) * self.speed
        return min(self.history_anchor + elapsed, self.history_end)


def replay_keys(settings: Settings) -> tuple[str, str]:
    """The Redis keys of the replay anchor and of the running server's heartbeat."""
    return keys.replay_keys(settings.redis.prefix)  # one hash tag: the anchor script runs on a cluster


def heartbeat_seconds(settings: Settings) -> float:
    """How long a server's heartbeat outlives its last refresh: three ticker periods, at least 15 s."""
    return max(HEARTBEAT_MIN_SECONDS, 3 * settings.broker.tick_seconds)


async def clock_heartbeat(redis: Any, settings: Settings) -> None:
    """One refresh of "a server owning the replay clock is running"; the server calls it every ticker pass."""
    ttl_ms = int(heartbeat_seconds(settings) * 1000)
    await redis.set(replay_keys(settings)[1], _heartbeat(settings), px=ttl_ms)


async def running_server(redis: Any, settings: Settings) -> ServerHeartbeat | None:
    """The live server's heartbeat (pid, host, url, start, speed), or None when no server is running."""
    raw = reply_text_or_none(await redis.get(replay_keys(settings)[1]))
    return None if raw is None else _read(_HEARTBEAT, raw) or ServerHeartbeat()


async def server_running(redis: Any, settings: Settings) -> bool:
    return await running_server(redis, settings) is not None


async def clock_release(redis: Any, settings: Settings, url: str) -> bool:
    """Drop the heartbeat of the server at `url` once all its processes stopped, so a restart re-anchors at
    once instead of joining its own stale clock; True if dropped."""
    return bool(url) and bool(await redis.eval(_RELEASE_SCRIPT, 1, replay_keys(settings)[1], url))


async def stored_anchor(redis: Any, settings: Settings) -> ClockAnchor | None:
    """The anchor in Redis ({start, speed, history, wall}), or None."""
    return _anchor(reply_text_or_none(await redis.get(replay_keys(settings)[0])))


async def shared_replay_clock(
    redis: Any,
    settings: Settings,
    history_start: datetime,
    history_end: datetime,
    wall: Callable[[], datetime] = wall_now,
    owner: bool = False,
) -> ReplayClock:
    """The one replay clock of every process on this Redis prefix, anchored at {prefix}{replay}:anchor.

    owner=True (the server): while another server is running, join its anchor (a different replay.start or
    speed is ignored, with a warning); otherwise write a fresh anchor from settings (wall = now) and the
    heartbeat. owner=False (CLI, notebooks): never write; use the stored anchor whatever its start, else
    one from settings kept in this process. replay.start outside the history raises ReplayStartError.
    """
    history_start = _require_utc(history_start, "history_start")
    history_end = _require_utc(history_end, "history_end")
    fresh = _fresh_anchor(settings, history_start, history_end, wall)
    if not owner:
        return _clock(await stored_anchor(redis, settings) or fresh, history_end, wall)
    written, anchor, other = await _write_anchor(redis, settings, fresh, _heartbeat(settings))
    if written:
        was = _at(_anchor(other), history_end, wall)
        log.info("replay clock anchored at %s (was %s)", _at(anchor, history_end, wall), was)
    elif (anchor["start"], anchor["speed"]) != (settings.replay.start, settings.replay.speed):
        log.warning(
            "REPLAY__START=%s (speed %s) ignored: a running server owns the clock (start %s, speed %s, "
            "now %s); stop the servers and run `copilot clock reset`, or restart them all with the new one",
            settings.replay.start,
            settings.replay.speed,
            anchor["start"],
            anchor["speed"],
            _at(anchor, history_end, wall),
        )
    return _clock(anchor, history_end, wall)


async def reset_replay_clock(
    redis: Any,
    settings: Settings,
    history_start: datetime,
    history_end: datetime,
    wall: Callable[[], datetime] = wall_now,
) -> tuple[ReplayClock | None, ReplayClock]:
    """`copilot clock reset`: re-anchor from settings now; (old clock or None, new clock). Refused with a
    ServiceError while a server owns the clock (its processes keep theirs in memory)."""
    from tools.protocols import ServiceError

    history_start = _require_utc(history_start, "history_start")
    history_end = _require_utc(history_end, "history_end")
    fresh = _fresh_anchor(settings, history_start, history_end, wall)
    written, anchor, other = await _write_anchor(redis, settings, fresh, "")
    if not written:
        server = _read(_HEARTBEAT, other) or ServerHeartbeat()
        owner = f"pid {server.get('pid', '?')} on {server.get('host', '?')}"
        raise ServiceError(
            f"a running server owns the replay clock ({owner}, REPLAY__START={server.get('start', '?')}); "
            "stop it first, or restart it with the new REPLAY__START"
        )
    old = _anchor(other)
    log.info("replay clock reset to %s (was %s)", _at(anchor, history_end, wall), _at(old, history_end, wall))
    return (None if old is None else _clock(old, history_end, wall)), _clock(anchor, history_end, wall)


def _fresh_anchor(
    settings: Settings, history_start: datetime, history_end: datetime, wall: Callable[[], datetime]
) -> ClockAnchor:
    history = replay_start(settings.replay.start, history_start, history_end)
    return ClockAnchor(
        start=settings.replay.start,
        speed=settings.replay.speed,
        history=history.isoformat(),
        wall=wall().isoformat(),
    )


async def _write_anchor(
    redis: Any, settings: Settings, fresh: ClockAnchor, heartbeat: str
) -> tuple[bool, ClockAnchor, str | None]:
    """Run _ANCHOR_SCRIPT: (written, the anchor in force, the old anchor if written else the heartbeat)."""
    anchor_key, server_key = replay_keys(settings)
    ttl_ms = int(heartbeat_seconds(settings) * 1000)
    written, current, other = await redis.eval(
        _ANCHOR_SCRIPT, 2, anchor_key, server_key, json.dumps(fresh), heartbeat, ttl_ms
    )
    anchor = _anchor(reply_text_or_none(current))
    if anchor is None:
        raise RuntimeError(
            f"replay anchor at {anchor_key} is unreadable; stop the servers and run `copilot clock reset`"
        )
    return bool(written), anchor, reply_text_or_none(other)


def _heartbeat(settings: Settings) -> str:
    heartbeat = ServerHeartbeat(
        pid=os.getpid(),
        host=socket.gethostname(),
        url=os.environ.get(SERVER_URL_ENV, ""),
        start=settings.replay.start,
        speed=settings.replay.speed,
    )
    return json.dumps(heartbeat)


def _clock(anchor: ClockAnchor, history_end: datetime, wall: Callable[[], datetime]) -> ReplayClock:
    return ReplayClock(
        history_anchor=datetime.fromisoformat(anchor["history"]),
        wall_anchor=datetime.fromisoformat(anchor["wall"]),
        speed=anchor["speed"],
        history_end=history_end,
        wall=wall,
    )


def _at(anchor: ClockAnchor | None, history_end: datetime, wall: Callable[[], datetime]) -> str:
    """The history time an anchor shows now, for the log ("no anchor" when there is none)."""
    if anchor is None:
        return "no anchor"
    return f"{_clock(anchor, history_end, wall).now():%Y-%m-%d %H:%M:%S} UTC"


def _read(adapter: TypeAdapter[_Stored], raw: str | None) -> _Stored | None:
    """A record stored in Redis as JSON, or None when it is missing or not one (a key missing, a value of
    the wrong type)."""
    if not raw:
        return None
    try:
        return adapter.validate_json(raw)
    except ValidationError:
        return None


def _anchor(raw: str | None) -> ClockAnchor | None:
    return _read(_ANCHOR, raw)
