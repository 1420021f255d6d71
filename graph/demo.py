"""`copilot demo`: the whole cycle in-process on the shared XAUUSD history, driven by slash commands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from config import Settings, load_settings
from graph.copilot import Copilot
from graph.schemas import ChatResult
from tools.market.clock import ManualClock
from tools.redis_clients import async_client
from tools.services import build_services

# A moment in the shared history where the technical engine gives a LONG with 75% confidence.
DEMO_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def show(step: str, result: ChatResult) -> None:
    print(f"\n>>> {step}\n{result.response}")
    if result.tools_used:
        print(f"[tools used: {', '.join(result.tools_used)}]")


def levels(result: ChatResult, ask: float) -> tuple[float, float]:
    """SL/TP from the signal when it gives them for a LONG, else 5 USD risk / 10 USD reward around the ask."""
    signal = result.signal or {}
    if signal.get("action") == "LONG" and signal.get("stop_loss") and signal.get("take_profit"):
        return float(signal["stop_loss"]), float(signal["take_profit"])
    return round(ask - 5.0, 2), round(ask + 10.0, 2)


async def run_demo(settings: Settings, redis_url: str) -> int:
    # A private key prefix: the demo never touches the trader's own paper account or sessions.
    prefix = f"{settings.redis.prefix}demo{uuid.uuid4().hex[:6]}:"
    data = settings.model_dump()
    data.update(redis_url=redis_url, redis={**data["redis"], "prefix": prefix})
    demo_settings = load_settings(**data)
    redis = async_client(redis_url)
    services = await build_services(demo_settings, redis, ManualClock(DEMO_TIME))
    try:
        async with Copilot.open(demo_settings, services=services) as copilot:
            print(f"Copilot demo at {DEMO_TIME.isoformat()} (XAUUSD replay, Redis prefix {prefix})")
            signal = await copilot.chat("local", "demo", "/signal XAUUSD 15m", symbol="XAUUSD")
            show("/signal XAUUSD 15m", signal)
            quote = await services.market.get_quote("XAUUSD")
            sl, tp = levels(signal, quote.ask)
            buy = await copilot.chat("local", "demo", f"/buy XAUUSD sl {sl} tp {tp}")
            show(f"/buy XAUUSD sl {sl} tp {tp}", buy)
            if buy.pending_approval is None:
                print("\nThe risk gate blocked the proposal; nothing to approve.")
                return 1
            print(f"\n[approval required: proposal {buy.pending_approval['proposal_id']}]")
            show("/approve", await copilot.chat("local", "demo", "/approve"))
            show("/portfolio", await copilot.chat("local", "demo", "/portfolio"))
    finally:
        await services.aclose()
        await redis.aclose()
    return 0
