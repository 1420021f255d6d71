"""Clocks: manual (tests, demos), system (live services) and replay (history played as a live feed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config import Settings

AUTO_START_BEFORE_END = timedelta(days=30)

# Compare-and-set: replace the anchor only if it is still the one this process read (or absent), so two
# processes resetting at once converge on a single anchor; always answer with the stored value.
_CAS_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if (not cur and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
end
return redis.call('GET', KEYS[1])
"""


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


def replay_start(start: str, history_start: datetime, history_end: datetime) -> datetime:
    """Resolve settings.replay.start ("auto" or an ISO UTC datetime) inside [history_start, history_end]."""
    if start.strip().lower() == "auto":
        return max(history_end - AUTO_START_BEFORE_END, history_start)
    try:
        value = datetime.fromisoformat(start.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"replay.start: expected 'auto' or an ISO UTC datetime, got {start!r}") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not history_start <= value <= history_end:
        raise ValueError(
            f"replay.start: {value:%Y-%m-%d %H:%M} UTC is outside the loaded history "
            f"({history_start:%Y-%m-%d %H:%M} to {history_end:%Y-%m-%d %H:%M} UTC)"
        )
    return value


async def shared_replay_clock(
    redis: Any,
    settings: Settings,
    history_start: datetime,
    history_end: datetime,
    wall: Callable[[], datetime] = wall_now,
) -> ReplayClock:
    """A ReplayClock whose anchor is stored once in Redis, so every process sharing it agrees on "now"."""
    history_start = _require_utc(history_start, "history_start")
    history_end = _require_utc(history_end, "history_end")
    anchor = replay_start(settings.replay.start, history_start, history_end)
    key = f"{settings.redis.prefix}replay:anchor"
    current = _text(await redis.get(key))
    stored = _parse(current)
    wanted = {"start": settings.replay.start, "speed": settings.replay.speed, "history": anchor.isoformat()}
    if stored is None or {k: stored.get(k) for k in wanted} != wanted:
        fresh = json.dumps({**wanted, "wall": wall().isoformat()})
        current = _text(await redis.eval(_CAS_SCRIPT, 1, key, current or "", fresh))
        stored = _parse(current)
        if stored is None:
            raise RuntimeError(f"replay anchor at {key} is unreadable after being written")
    return ReplayClock(
        history_anchor=datetime.fromisoformat(stored["history"]),
        wall_anchor=datetime.fromisoformat(stored["wall"]),
        speed=float(stored["speed"]),
        history_end=history_end,
        wall=wall,
    )


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _parse(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None  # a corrupt anchor is replaced like a stale one
    return data if isinstance(data, dict) and {"history", "wall", "speed"} <= data.keys() else None
