"""GET /api/events re-prices an account's open positions in the process (server/api/routes/events.py): the
`portfolio` frames are PaperBroker.value of the account as last read, at the process's shared quotes, and
the account is read from Redis again only after its notices (or this process's own changes) and every
ACCOUNT_SECONDS. On the real Redis, the real XAUUSD history and a manual market clock, each frame is checked
against a fresh GET /api/portfolio read (another broker, as another worker would read it) at the same quote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.requests import Request

from server.api.routes import events as events_route
from tools.broker.paper import PaperBroker
from tools.market.clock import ManualClock
from tools.schemas import OrderRequest
from tools.services import Services

ACCOUNT = "ann"
Frame = tuple[str, dict[str, Any]]


async def never() -> dict[str, Any]:  # the page never hangs up
    await asyncio.Future()
    raise AssertionError("unreachable")


class Page:
    """One open page: the route's own stream body, read frame by frame in this loop."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self.body = body

    async def next(self) -> Frame:
        async with asyncio.timeout(30):
            while True:
                chunk = (await anext(self.body)).decode()
                name = data = None
                for line in chunk.splitlines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if name is not None:
                    return name, data or {}

    async def until(self, wanted: str) -> list[Frame]:
        frames = [await self.next()]
        while frames[-1][0] != wanted:
            frames.append(await self.next())
        return frames


async def open_page(services: Services, app: SimpleNamespace) -> Page:
    request = Request({"type": "http", "app": app, "headers": []}, never)
    response = await events_route.events(request, ACCOUNT, services, "XAUUSD", None)
    return Page(response.body_iterator)  # type: ignore[arg-type]


async def reads(r: aioredis.Redis) -> int:
    """How many times any account was read from Redis so far (its positions hash is in every read)."""
    stats = await r.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


def buy(bid: float, lots: float) -> OrderRequest:
    return OrderRequest(
        symbol="XAUUSD", action="BUY", size=lots, stop_loss=round(bid - 40, 2),
        take_profit=round(bid + 40, 2), account_id=ACCOUNT,
    )  # fmt: skip


async def test_the_page_reprices_in_process_as_a_fresh_read_and_a_close_notice_rereads_the_account(
    services: Services, redis_client: aioredis.Redis, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_route, "ACCOUNT_SECONDS", 3600.0)  # no safety-net read during the test
    broker = services.broker
    assert isinstance(broker, PaperBroker)
    # Another worker's broker: its reads are the fresh ones, its changes are not counted by this process.
    other = PaperBroker(services.redis, services.market, clock, services.specs, services.settings)
    bid = (await services.market.get_quote("XAUUSD")).bid
    kept = await broker.place_order(buy(bid, 0.1), "k-kept")
    closed_early = await broker.place_order(buy(bid, 0.05), "k-early")
    assert kept.success and closed_early.success and kept.ticket and closed_early.ticket
    clock.advance(timedelta(minutes=7))
    assert (await broker.close_position(closed_early.ticket, "k-early-close", ACCOUNT)).success
    closing = await broker.place_order(buy(bid, 0.02), "k-closing")  # closed by "the other worker" later
    assert closing.success and closing.ticket

    app = SimpleNamespace(state=SimpleNamespace())
    page = await open_page(services, app)
    try:
        opened = (await page.until("portfolio"))[-1][1]
        fresh = (await other.get_portfolio(ACCOUNT)).model_dump(mode="json")
        assert opened == fresh  # a realized close this week, two open positions
        assert fresh["daily_pnl"] != round(fresh["equity"] - fresh["balance"], 2)
        assert [p["ticket"] for p in opened["positions"]] == [kept.ticket, closing.ticket]

        # The market moves: the next frame is re-priced in the process, the account not read from Redis.
        before = await reads(redis_client)
        clock.advance(timedelta(minutes=3))
        moved = await services.market.get_quote("XAUUSD")
        assert moved.bid != opened["positions"][0]["current_price"]  # the history moved in 3 minutes
        while True:
            name, data = await page.next()
            if name == "market" and data["bid"] == moved.bid:
                break
        name, repriced = await page.next()
        assert name == "portfolio"
        assert await reads(redis_client) == before
        assert repriced == (await other.get_portfolio(ACCOUNT)).model_dump(mode="json")
        assert repriced["positions"][0]["current_price"] == moved.bid
        assert repriced["equity"] != opened["equity"]

        # This process modifies a stop (no notice): its next frame has the new level.
        stop = round(moved.bid - 30, 2)
        assert (
            await broker.modify_position(
                kept.ticket, stop_loss=stop, take_profit=None, idempotency_key="k-mod", account_id=ACCOUNT
            )
        ).success
        modified = (await page.until("portfolio"))[-1][1]
        assert modified["positions"][0]["stop_loss"] == stop
        assert modified == (await other.get_portfolio(ACCOUNT)).model_dump(mode="json")

        # Another worker closes a position: its notice, then at once (the next poll) the frame without it.
        assert (await other.close_position(closing.ticket, "k-close", ACCOUNT)).success
        while (frame := await page.next())[0] != "fill":
            pass
        assert frame[1]["ticket"] == str(closing.ticket) and frame[1]["kind"] == "manual"
        after = [await page.next(), await page.next()]
        assert [name for name, _ in after] == ["market", "portfolio"]
        gone = after[1][1]
        assert [p["ticket"] for p in gone["positions"]] == [kept.ticket]
        assert gone["balance"] != modified["balance"]
        assert gone == (await other.get_portfolio(ACCOUNT)).model_dump(mode="json")
    finally:
        await page.body.aclose()  # type: ignore[attr-defined]
        await app.state.notice_hub.aclose()
