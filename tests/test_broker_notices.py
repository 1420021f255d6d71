"""The account notice stream and per-account tickets, on the real Redis and the real XAUUSD history: each
fill, close and triggered alert is one stream entry, written with the event, also when processes race."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from config import Settings
from tests.support.broker_support import World
from tools.broker.alerts import RedisAlerts
from tools.broker.ledger import Keys
from tools.broker.paper import PaperBroker
from tools.notices import MAX_NOTICES, Notice, last_id, notices_key, read_notices, valid_id
from tools.schemas import AlertRequest, OrderRequest


def buy(bid: float, account: str | None = None, sl_below: float = 3.0, tp_above: float = 3.0) -> OrderRequest:
    return OrderRequest(
        symbol="XAUUSD", action="BUY", size=0.1, stop_loss=round(bid - sl_below, 2),
        take_profit=round(bid + tp_above, 2), account_id=account,
    )  # fmt: skip


async def notices(redis: aioredis.Redis, settings: Settings, account: str = "paper") -> list[Notice]:
    return await read_notices(redis, settings.redis.prefix, account, "0-0", None, count=MAX_NOTICES)


async def test_tickets_are_numbered_per_account_and_never_reach_another(
    broker: PaperBroker, market_world: World
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    mine = [await broker.place_order(buy(quote.bid), f"a{i}") for i in range(2)]
    theirs = [await broker.place_order(buy(quote.bid, "bob"), f"b{i}") for i in range(3)]
    assert [r.ticket for r in mine] == [1, 2] and [r.ticket for r in theirs] == [1, 2, 3]
    refused = await broker.close_position(3, "a-close-3")  # bob's #3: not a position of this account
    assert not refused.success and "no open position with ticket 3" in refused.message
    closed = await broker.close_position(1, "a-close-1")  # this account's own #1, not bob's
    assert closed.success
    assert [p.ticket for p in (await broker.get_portfolio()).positions] == [2]
    assert [p.ticket for p in (await broker.get_portfolio("bob")).positions] == [1, 2, 3]
    assert [t.ticket for t in await broker.history("bob")] == []


async def test_an_account_from_the_shared_counter_days_continues_above_it(
    broker: PaperBroker, market_world: World, redis_client: aioredis.Redis, settings: Settings
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    keys = Keys(settings.redis.prefix, "paper")
    await redis_client.hset(
        keys.account, "balance_usd", "10000.0"
    )  # the account existed, tickets 1..7 shared
    await redis_client.set(keys.legacy_tickets, 7)
    assert (await broker.place_order(buy(quote.bid), "old")).ticket == 8
    assert (await broker.place_order(buy(quote.bid, "newcomer"), "new")).ticket == 1


async def test_each_fill_and_close_is_one_notice_even_when_two_processes_race(
    broker: PaperBroker, market_world: World, redis_client: aioredis.Redis, settings: Settings
) -> None:
    clock, market, specs = market_world
    quote = await market.get_quote("XAUUSD")
    opened = await broker.place_order(buy(quote.bid), "k1")
    assert (await broker.place_order(buy(quote.bid), "k1")).duplicate  # a replay adds no notice
    first = await notices(redis_client, settings)
    assert [(n.kind, n.data["kind"], n.data["ticket"], n.data["key"]) for n in first] == [
        ("fill", "open", str(opened.ticket), "k1")
    ]
    other = aioredis.from_url(str(settings.effective_redis_url), decode_responses=True)
    try:
        twin = PaperBroker(other, market, clock, specs, settings)
        clock.set(clock.now() + timedelta(hours=6))  # the stop or the target is reached meanwhile
        await asyncio.gather(*(b.sync() for b in (broker, twin) * 3))
    finally:
        await other.aclose()
    after = await notices(redis_client, settings)
    assert [n.data["kind"] for n in after] == ["open", after[1].data["kind"]] and len(after) == 2
    trade = (await broker.history())[0]
    assert after[1].data["kind"] == trade.reason and float(after[1].data["price"]) == trade.close_price
    assert (
        _order(after[0].id) < _order(after[1].id)
        and await last_id(redis_client, settings.redis.prefix, "paper") == after[1].id
    )
    assert await redis_client.ttl(notices_key(settings.redis.prefix, "paper")) > 0  # redis.ttl applies


async def test_a_triggered_alert_is_one_notice_whoever_checks(
    redis_client: aioredis.Redis, market_world: World, settings: Settings
) -> None:
    clock, market, _ = market_world
    other = aioredis.from_url(str(settings.effective_redis_url), decode_responses=True)
    try:
        books = [RedisAlerts(c, market, clock, settings) for c in (redis_client, other)]
        quote = await market.get_quote("XAUUSD")
        alert = await books[0].set_alert(
            AlertRequest(symbol="XAUUSD", condition="above", price=quote.bid - 50)
        )
        clock.set(clock.now() + timedelta(minutes=5))
        await asyncio.gather(*(b.check() for b in books * 3))
    finally:
        await other.aclose()
    got = await notices(redis_client, settings)
    assert [(n.kind, n.data["alert_id"], n.data["status"]) for n in got] == [
        ("alert", alert.alert_id, "triggered")
    ]


async def test_only_stream_ids_are_taken_as_a_position() -> None:
    assert valid_id("1764770000000-3") == "1764770000000-3"
    assert valid_id("0-0") == "0-0"  # an empty stream's position: a reconnect gets the first notice on
    for other in (None, "", "3-2", "abc", "1764770000000", "1764770000000-x"):
        assert valid_id(other) is None  # "3-2" was the fills-alerts count of earlier versions


def _order(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)
