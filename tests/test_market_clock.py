"""Clocks: manual, replay mapping and clamping, and one replay "now" shared through a real Redis: the server
anchors it, every other process only reads it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from config import Settings
from config.values import ReplayStartError, replay_start
from tools.market.clock import (
    ManualClock,
    ReplayClock,
    clock_heartbeat,
    clock_release,
    replay_keys,
    reset_replay_clock,
    running_server,
    server_running,
    shared_replay_clock,
)
from tools.protocols import ServiceError

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


def starting(settings: Settings, start: str) -> Settings:
    return settings.model_copy(update={"replay": settings.replay.model_copy(update={"start": start})})


async def test_the_server_anchors_and_every_process_agrees(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    wall = Wall()
    server = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall, owner=True)
    wall.now = WALL + timedelta(minutes=7)  # a CLI command starts 7 minutes later
    reader = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    assert server.now() == reader.now() == H_END - timedelta(days=30) + timedelta(minutes=7)
    anchor_key, server_key = replay_keys(settings)
    assert await redis_client.exists(anchor_key) == 1
    assert await server_running(redis_client, settings)  # the owner's heartbeat is written at once
    assert 0 < await redis_client.pttl(server_key) <= 15_000


async def test_a_reader_never_writes_and_follows_the_stored_anchor(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    wall = Wall()
    anchor_key, _ = replay_keys(settings)
    alone = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    assert alone.now() == H_END - timedelta(days=30)  # from its own settings, kept in memory
    assert await redis_client.exists(anchor_key) == 0
    await shared_replay_clock(
        redis_client, starting(settings, "2026-03-02T10:00:00Z"), H_START, H_END, wall=wall, owner=True
    )
    stored = await redis_client.get(anchor_key)
    wall.now = WALL + timedelta(hours=1)
    # A process started without REPLAY__START (or with another one) reads the server's clock, untouched.
    for start in ("auto", "2026-01-05T08:00:00Z"):
        reader = await shared_replay_clock(redis_client, starting(settings, start), H_START, H_END, wall=wall)
        assert reader.now() == datetime(2026, 3, 2, 11, tzinfo=UTC)
    assert await redis_client.get(anchor_key) == stored


async def test_a_server_with_no_live_server_re_anchors(
    settings: Settings, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    wall = Wall()
    demo = starting(settings, "2026-03-02T10:00:00Z")
    await shared_replay_clock(redis_client, demo, H_START, H_END, wall=wall, owner=True)
    await redis_client.delete(replay_keys(settings)[1])  # the server stopped: its heartbeat is gone
    wall.now = WALL + timedelta(hours=2)
    with caplog.at_level(logging.INFO, logger="copilot.clock"):
        restarted = await shared_replay_clock(redis_client, demo, H_START, H_END, wall=wall, owner=True)
    assert restarted.now() == datetime(2026, 3, 2, 10, tzinfo=UTC)  # the same demo again, not 2 hours on
    assert "replay clock anchored at 2026-03-02 10:00:00 UTC (was 2026-03-02 12:00:00 UTC)" in caplog.text


async def test_a_server_joins_a_live_server_and_keeps_its_anchor(
    settings: Settings, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    wall = Wall()
    first = await shared_replay_clock(
        redis_client, starting(settings, "2026-03-02T10:00:00Z"), H_START, H_END, wall=wall, owner=True
    )
    stored = await redis_client.get(replay_keys(settings)[0])
    wall.now = WALL + timedelta(minutes=3)
    with caplog.at_level(logging.INFO, logger="copilot.clock"):
        second = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall, owner=True)
    assert second.now() == first.now() == datetime(2026, 3, 2, 10, 3, tzinfo=UTC)
    assert await redis_client.get(replay_keys(settings)[0]) == stored
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "REPLAY__START=auto (speed 1.0) ignored: a running server owns the clock" in warning.getMessage()
    assert "copilot clock reset" in warning.getMessage()


async def test_heartbeat_and_release(settings: Settings, redis_client: aioredis.Redis) -> None:
    assert not await server_running(redis_client, settings)
    await clock_heartbeat(redis_client, settings)
    info = await running_server(redis_client, settings)
    assert info is not None and info["start"] == "auto" and info["speed"] == 1.0 and "pid" in info
    slow = settings.model_copy(update={"broker": settings.broker.model_copy(update={"tick_seconds": 20.0})})
    await clock_heartbeat(redis_client, slow)
    assert 15_000 < await redis_client.pttl(replay_keys(settings)[1]) <= 60_000  # 3 ticker periods
    assert not await clock_release(redis_client, settings, "http://127.0.0.1:1")  # another server's: kept
    await redis_client.set(replay_keys(settings)[1], '{"url": "http://127.0.0.1:1"}')
    assert await clock_release(redis_client, settings, "http://127.0.0.1:1")
    assert not await server_running(redis_client, settings)


async def test_reset_re_anchors_unless_a_server_owns_the_clock(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    wall = Wall()
    await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall, owner=True)
    with pytest.raises(ServiceError, match="a running server owns the replay clock"):
        await reset_replay_clock(
            redis_client, starting(settings, "2026-02-02T00:00:00"), H_START, H_END, wall
        )
    await redis_client.delete(replay_keys(settings)[1])
    wall.now = WALL + timedelta(hours=1)
    old, new = await reset_replay_clock(
        redis_client, starting(settings, "2026-02-02T00:00:00"), H_START, H_END, wall
    )
    assert old is not None and old.now() == H_END - timedelta(days=30) + timedelta(hours=1)
    assert new.now() == datetime(2026, 2, 2, tzinfo=UTC)
    reader = await shared_replay_clock(redis_client, settings, H_START, H_END, wall=wall)
    assert reader.now() == datetime(2026, 2, 2, tzinfo=UTC)


async def test_a_start_outside_the_history_names_its_range(
    settings: Settings, redis_client: aioredis.Redis
) -> None:
    for owner in (False, True):
        with pytest.raises(ReplayStartError, match="2025-10-09 19:00 to 2026-08-21 20:45 UTC"):
            await shared_replay_clock(
                redis_client, starting(settings, "2024-01-01T00:00:00Z"), H_START, H_END, owner=owner
            )
    assert await redis_client.exists(*replay_keys(settings)) == 0
