"""`copilot signal|analyze|portfolio`: the trading services from the shell, no model and no server needed."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from config import Settings
from graph.messages import render_result
from tools.protocols import ServiceError
from tools.services import Services, build_services


async def _with_services(settings: Settings, use: Callable[[Services], Awaitable[str]]) -> str:
    redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
    services = await build_services(settings, redis)
    try:
        return await use(services)
    finally:
        await services.aclose()
        await redis.aclose()


def run_service_command(settings: Settings, args: argparse.Namespace) -> str:
    """The text to print for one service command; raises ServiceError with a message for the trader."""

    async def use(services: Services) -> str:
        data: dict[str, Any]
        if args.command == "signal":
            data = (await services.signals.get_signal(args.symbol, args.timeframe)).model_dump(mode="json")
            return render_result("get_ml_signal", json.dumps(data))
        if args.command == "analyze":
            data = (await services.signals.analyze(args.symbol)).model_dump(mode="json")
            return json.dumps(data, indent=2)
        data = (await services.broker.get_portfolio(args.account)).model_dump(mode="json")
        return render_result("get_portfolio", json.dumps(data))

    return asyncio.run(_with_services(settings, use))


__all__ = ["ServiceError", "run_service_command"]
