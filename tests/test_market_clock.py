"""Clocks: manual, replay mapping and clamping, and one replay "now" shared through a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from config import Settings
from tools.market.clock import ManualClock, ReplayClock, replay_start, shared_replay_clock

H_START = datetime(2025, 10, 9, 19, 0, tzinfo=UTC)
H_END = datetime(2026, 8, 21, 20, 45, tzinfo=UTC)
WALL = datetime(2030, 1, 1, tzinfo=UTC)


class Wall:
    """A controllable wall clock, so replay arithmetic is checked without sleeping."""

    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> datetime:
        return self.now


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(H_START)
    assert clock.advance(timedelta(minutes=5)) == H_START + timedelta(minutes=5)
    clock.set(H_END)
    assert clock.now() == H_END
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_replay_maps_wall_time_with_speed_and_clamps() -> None:
    wall = Wall()
    clock = ReplayClock(H_END - timedelta(hours=1), WALL, speed=60.0, history_end=H_END, wall=wall)
    wall.now = WALL + timedelta(seconds=30)
    assert clock.now() == H_END - timedelta(minutes=30)  # 30 wall seconds x 60 = 30 history minutes
    wall.now = WALL + timedelta(hours=5)
    assert clock.now() == H_END


def test_replay_start_auto_and_explicit() -> None:
    assert replay_start("auto", H_START, H_END) == H_END - timedelta(days=30)
    assert replay_start("2026-01-05T08:00:00Z", H_START, H_END) == datetime(2026, 1, 5, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="outside the loaded history"):
        replay_start("2020-01-01T00:00:00", H_START, H_END)
    with pytest.raises(ValueError, match=r"replay\.start"):
        replay_start("yesterday", H_START, H_END)


async def test_two_processes_agree_on_now(settings: Settings, redis_client: aioredis.Redis) -> None:
    wall = Wall()
    first = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    wall.now = WALL + timedelta(minutes=7)  # the second process starts 7 minutes later
    second = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    assert first.now() == second.now() == H_END - timedelta(days=30) + timedelta(minutes=7)
    assert await redis_client.exists(f"{settings.redis.prefix}replay:anchor") == 1


async def test_changed_settings_reset_the_anchor(settings: Settings, redis_client: aioredis.Redis) -> None:
    wall = Wall()
    await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    wall.now = WALL + timedelta(hours=1)
    changed = settings.model_copy(
        update={"replay": settings.replay.model_copy(update={"start": "2026-02-02T00:00:00"})}
    )
    clock = await shared_replay_clock(redis_client, changed, H_START, H_END, wall=wall)
    assert clock.now() == datetime(2026, 2, 2, tzinfo=UTC)  # restarted at the new start, wall anchor = now
