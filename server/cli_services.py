"""`copilot signal|analyze|portfolio|clock`: the trading services from the shell, no model needed.

These commands read the market on the replay clock the server owns (tools.market.clock) and never anchor it:
the stored anchor when there is one, else one from settings kept in this process. `copilot portfolio` asks
the running server itself when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config import Settings
from config.values import replay_start
from graph.messages import render_result
from tools.key_migration import migrate_keys
from tools.market.clock import (
    clock_release,
    replay_keys,
    reset_replay_clock,
    running_server,
    shared_replay_clock,
    stored_anchor,
)
from tools.market.factory import data_files, load_history
from tools.protocols import ServiceError
from tools.redis_clients import async_client
from tools.services import Services, build_services

TIME = "%Y-%m-%d %H:%M:%S UTC"


def server_url(settings: Settings, host: str | None = None, port: int | None = None) -> str:
    """The URL to reach a server bound to host:port (default: settings.server) from this machine."""
    host = host or settings.server.host
    connect = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{connect}:{port or settings.server.port}"


def check_market(settings: Settings) -> None:
    """Before `copilot serve` starts workers: the market data exists and REPLAY__START lies inside it
    (ServiceError / ReplayStartError with one line for the trader, instead of a traceback per worker)."""
    if settings.services.data_url:
        return
    data_files(settings)
    if settings.replay.start.strip().lower() != "auto":
        replay_start(settings.replay.start, *load_history(settings).history_range())


def release_clock(settings: Settings, url: str) -> None:
    """After `copilot serve` stopped: drop its heartbeat, so starting it again re-anchors the clock now."""

    async def release() -> None:
        redis = async_client(settings.effective_redis_url)
        try:
            await clock_release(redis, settings, url)
        except (RedisError, OSError):
            pass  # Redis gone: the heartbeat expires by itself within seconds
        finally:
            await redis.aclose()

    asyncio.run(release())


async def _with_redis(settings: Settings, use: Callable[[aioredis.Redis], Awaitable[str]]) -> str:
    redis = async_client(settings.effective_redis_url)
    try:
        await migrate_keys(redis, settings.redis.prefix)  # `copilot clock …` reads the clock's keys directly
        return await use(redis)
    finally:
        await redis.aclose()


async def _with_services(
    settings: Settings, redis: aioredis.Redis, use: Callable[[Services], Awaitable[str]]
) -> str:
    services = await build_services(settings, redis)  # not the clock's owner: reads the stored anchor
    try:
        return await use(services)
    finally:
        await services.aclose()


async def _portfolio_from_server(
    settings: Settings, redis: aioredis.Redis, api_key: str | None
) -> str | None:
    """The portfolio as the running `copilot serve` shows it. None when no server is running, it did not say
    its URL (an in-process server) or it does not answer: the caller then reads the ledger on the stored
    anchor, which is the server's clock."""
    server = await running_server(redis, settings)
    if not server or not server.get("url"):
        return None
    url = str(server["url"]).rstrip("/")
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=settings.tools.timeout) as client:
            response = await client.get("/api/portfolio", headers=headers)
    except httpx.HTTPError as exc:
        print(
            f"copilot portfolio: no answer from the server at {url} ({exc}); reading locally", file=sys.stderr
        )
        return None
    if response.status_code == 401:
        raise ServiceError(f"the server at {url} needs an API key: --api-key KEY or env COPILOT_API_KEY")
    if response.status_code != 200:
        raise ServiceError(f"the server at {url} answered {response.status_code}: {response.text[:200]}")
    return render_result("get_portfolio", response.text) + f"\n(from the server at {url})"


def run_service_command(settings: Settings, args: argparse.Namespace) -> str:
    """The text to print for one service command; raises ServiceError with a message for the trader."""
    if args.command == "clock":
        return run_clock_command(settings, args.action)

    async def use(services: Services) -> str:
        if args.command == "signal":
            signal = await services.signals.get_signal(args.symbol, args.timeframe)
            return render_result("get_ml_signal", json.dumps(signal.model_dump(mode="json")))
        if args.command == "analyze":
            analysis = await services.signals.analyze(args.symbol)
            return json.dumps(analysis.model_dump(mode="json"), indent=2)
        portfolio = await services.broker.get_portfolio(args.account or "paper")
        return render_result("get_portfolio", json.dumps(portfolio.model_dump(mode="json")))

    async def run(redis: aioredis.Redis) -> str:
        if args.command == "portfolio" and args.account is None:
            api_key = args.api_key or os.environ.get("COPILOT_API_KEY")
            served = await _portfolio_from_server(settings, redis, api_key)
            if served is not None:
                return served
        return await _with_services(settings, redis, use)

    return asyncio.run(_with_redis(settings, run))


def run_clock_command(settings: Settings, action: str) -> str:
    """`copilot clock show|reset`: the stored anchor, the market's now and the server; or re-anchor now."""
    if settings.services.data_url:
        return f"market data and time come from {settings.services.data_url}: there is no replay clock"
    start, end = load_history(settings).history_range()

    async def run(redis: aioredis.Redis) -> str:
        if action == "reset":
            old, new = await reset_replay_clock(redis, settings, start, end)
            was = "no anchor" if old is None else f"{old.now():{TIME}}"
            return (
                f"replay clock reset: now {new.now():{TIME}} (REPLAY__START={settings.replay.start}, "
                f"speed {settings.replay.speed}); was {was}"
            )
        anchor = await stored_anchor(redis, settings)
        server = await running_server(redis, settings)
        clock = await shared_replay_clock(redis, settings, start, end)
        stored = (
            f"history {anchor['history']} at wall {anchor['wall']} "
            f"(REPLAY__START={anchor['start']}, speed {anchor['speed']})"
            if anchor
            else f"none stored (this process uses REPLAY__START={settings.replay.start}, not stored)"
        )
        running = "not running"
        if server is not None:
            where = f", {server['url']}" if server.get("url") else ""
            running = f"running (pid {server.get('pid', '?')} on {server.get('host', '?')}{where})"
        return "\n".join(
            [
                f"anchor {replay_keys(settings)[0]}: {stored}",
                f"market now: {clock.now():{TIME}} (history {start:{TIME}} to {end:{TIME}})",
                f"server: {running}",
            ]
        )

    return asyncio.run(_with_redis(settings, run))


__all__ = ["ServiceError", "check_market", "release_clock", "run_service_command", "server_url"]
