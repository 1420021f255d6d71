"""Keys of earlier versions moved to the hash-tagged names (tools/key_migration.py) on the real Redis.

A paper ledger as an earlier version left it (written here under its old literal key names: the values are a
real ledger's, made by the paper broker and copied with DUMP/RESTORE) is read by a new process's services:
balance, open positions, closed trades, orders, notices and alerts intact, a re-sent order answered with its
first result, and the next ticket above the old ones."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from config import Settings
from graph.recovery.notes import RunNotes
from tests.support.broker_support import World
from tests.support.graph import GOOD
from tools import key_migration
from tools.broker.alerts import RedisAlerts
from tools.broker.ledger import Keys
from tools.broker.paper import PaperBroker
from tools.key_migration import migrate_keys, new_name
from tools.keys import AccountKeys, SessionKeys, replay_keys
from tools.market.clock import ManualClock
from tools.notices import read_notices
from tools.schemas import AlertRequest, OrderRequest
from tools.services import build_services

ACCOUNT = "paper-ana"
LEDGER = ("account", "positions", "closed", "realized", "orders", "fills", "ticket_seq")


def buy(bid: float, **kw: object) -> OrderRequest:
    return OrderRequest(
        symbol="XAUUSD", action="BUY", size=0.1, stop_loss=round(bid - 5, 2), account_id=ACCOUNT, **kw
    )


async def old_ledger(
    redis: aioredis.Redis, world: World, settings: Settings, old: str
) -> tuple[PaperBroker, OrderRequest]:
    """A ledger made by the broker under a scratch prefix, then RESTOREd under `old` by the earlier layout's
    literal names; the scratch keys are deleted. Returns the scratch broker and the first order."""
    clock, market, specs = world
    scratch = PaperBroker(redis, market, clock, specs, settings)
    alerts = RedisAlerts(redis, market, clock, settings)
    quote = await market.get_quote("XAUUSD")
    first = buy(quote.bid)
    assert (await scratch.place_order(first, "k-open")).success
    second = await scratch.place_order(buy(quote.bid), "k-closed")
    assert (await scratch.close_position(int(second.ticket or 0), "k-close", ACCOUNT)).success
    await alerts.set_alert(AlertRequest(symbol="XAUUSD", condition="above", price=99_999), ACCOUNT, key="a1")
    new, p = Keys(settings.redis.prefix, ACCOUNT), settings.redis.prefix
    copies = {new.idem(k): f"{old}paper:{ACCOUNT}:idem:{k}" for k in ("k-open", "k-closed", "k-close")}
    copies |= {
        getattr(new, "tickets" if f == "ticket_seq" else f): f"{old}paper:{ACCOUNT}:{f}" for f in LEDGER
    }
    copies |= {new.notices: f"{old}notices:{ACCOUNT}", new.alerts: f"{old}alerts:{ACCOUNT}"}
    for source, target in copies.items():
        dumped = await redis.dump(source)
        assert dumped is not None, source
        await redis.restore(target, 0, dumped)
        await redis.delete(source)
    await redis.sadd(f"{old}paper:accounts", ACCOUNT)
    await redis.sadd(f"{old}alerts:accounts", ACCOUNT)
    await redis.set(f"{old}queued:ana:s1", json.dumps({"id": "q1", "decision": {"decision": "approve"}}))
    await redis.lpush(f"{old}fates:ana:s1", json.dumps({"proposal_id": "p1", "result": {"response": "x"}}))
    await redis.set(f"{old}replay:anchor", '{"start": "auto", "speed": 1.0, "history": "h", "wall": "w"}')
    shared = {f"{p}paper:accounts", f"{p}alerts:accounts"}
    assert not [k async for k in redis.scan_iter(match=f"{p}*") if k not in shared]
    return scratch, first


async def test_an_old_ledger_is_read_through_the_new_names_after_start(
    redis_client: aioredis.Redis, market_world: World, settings: Settings, shared_data: Path
) -> None:
    old = f"m{uuid.uuid4().hex[:10]}:"
    _, first = await old_ledger(redis_client, market_world, settings, old)
    before = [k async for k in redis_client.scan_iter(match=f"{old}*")]
    # What the old ledger says, read through the old names before the move.
    balance = float(await redis_client.hget(f"{old}paper:{ACCOUNT}:account", "balance_usd") or 0)
    positions = await redis_client.hgetall(f"{old}paper:{ACCOUNT}:positions")
    orders = await redis_client.lrange(f"{old}paper:{ACCOUNT}:orders", 0, -1)
    assert balance != 10_000 and len(positions) == 1 and len(orders) == 3  # 2 places and a close

    new_settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"prefix": old})})
    services = await build_services(new_settings, redis_client, ManualClock(GOOD))
    try:
        # Every old key moved (the shared sets keep their names), nothing left under the old names.
        after = {k async for k in redis_client.scan_iter(match=f"{old}*")}
        shared = {f"{old}paper:accounts", f"{old}alerts:accounts", key_migration.layout_key(old)}
        assert after - shared == {new_name(old, k) for k in before} - {None}
        assert all(k.startswith(f"{old}{{") for k in after - shared)

        portfolio = await services.broker.get_portfolio(ACCOUNT)
        assert portfolio.balance == round(balance, 2)
        assert [p.ticket for p in portfolio.positions] == [int(t) for t in positions]
        assert len(await services.broker.history(ACCOUNT)) == 1  # type: ignore[attr-defined]
        keys = AccountKeys(old, ACCOUNT)
        assert await redis_client.lrange(keys.orders, 0, -1) == orders

        # The re-sent order is answered with its first result: no second order.
        again = await services.broker.place_order(first, "k-open")
        assert again.duplicate and again.ticket == portfolio.positions[0].ticket
        assert await redis_client.llen(keys.orders) == 3
        assert await services.broker.find_order("k-open", ACCOUNT) is not None
        # A new order continues the account's tickets (3 after tickets 1 and 2).
        quote = await services.market.get_quote("XAUUSD")
        fresh = await services.broker.place_order(buy(quote.bid), "k-new")
        assert fresh.success and fresh.ticket == 3

        # Notices (their ids kept), alerts, a queued decision, fates and the replay anchor moved too.
        notices = await read_notices(redis_client, old, ACCOUNT, "0-0", None)
        assert [n.data.get("key") for n in notices if n.kind == "fill"] == [
            "k-open",
            "k-closed",
            "k-close",
            "k-new",
        ]
        assert [a.price for a in await services.alerts.list_alerts(ACCOUNT)] == [99_999]
        notes = RunNotes(redis_client, old, 0)
        queued = await notes.queued_decision("ana:s1")
        assert queued is not None and queued.decision == {"decision": "approve"}
        assert await redis_client.llen(SessionKeys(old, "ana:s1").fates) == 1
        assert await redis_client.exists(replay_keys(old)[0])
    finally:
        await services.aclose()


async def test_a_key_under_both_names_keeps_the_new_one(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = AccountKeys(key_prefix, "b")
    await redis_client.hset(f"{key_prefix}paper:b:account", "balance_usd", "1.0")
    await redis_client.hset(keys.account, "balance_usd", "2.0")
    await redis_client.hset(f"{key_prefix}paper:b:positions", "1", "{}")
    assert await migrate_keys(redis_client, key_prefix) == 1  # positions only
    assert await redis_client.hget(keys.account, "balance_usd") == "2.0"
    assert await redis_client.hget(f"{key_prefix}paper:b:account", "balance_usd") == "1.0"
    assert await redis_client.hgetall(keys.positions) == {"1": "{}"}


async def test_processes_starting_together_move_each_key_once(redis_url: str, key_prefix: str) -> None:
    """Three clients (as three processes) migrate the same prefix at once: every key moved, by one of them."""
    seed = aioredis.from_url(redis_url, decode_responses=True)
    clients = [aioredis.from_url(redis_url, decode_responses=True) for _ in range(3)]
    try:
        for i in range(300):
            await seed.set(f"{key_prefix}paper:acc{i % 7}:idem:k{i}", json.dumps({"n": i}))
        moved = await asyncio.gather(*(migrate_keys(c, key_prefix) for c in clients))
        assert sum(moved) == 300
        for i in range(300):
            assert await seed.get(AccountKeys(key_prefix, f"acc{i % 7}").idem(f"k{i}")) == json.dumps(
                {"n": i}
            )
        assert not [k async for k in seed.scan_iter(match=f"{key_prefix}paper:*")]
    finally:
        for c in (seed, *clients):
            await c.aclose()


async def test_a_later_start_reads_one_key_instead_of_scanning_again(
    redis_client: aioredis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_client.hset(f"{key_prefix}paper:c:account", "balance_usd", "1.0")
    assert await migrate_keys(redis_client, key_prefix) == 1
    monkeypatch.setattr(key_migration, "_done", set())  # another process starting later
    scans = int((await redis_client.info("commandstats"))["cmdstat_scan"]["calls"])
    assert await migrate_keys(redis_client, key_prefix) == 0
    assert int((await redis_client.info("commandstats"))["cmdstat_scan"]["calls"]) == scans
    # Hence a key an old-version process wrote after the move stays where it is (stop those first).
    await redis_client.hset(f"{key_prefix}paper:d:account", "balance_usd", "1.0")
    monkeypatch.setattr(key_migration, "_done", set())
    assert await migrate_keys(redis_client, key_prefix) == 0
    assert await redis_client.exists(f"{key_prefix}paper:d:account")


def test_old_names_map_to_one_slot_per_account_and_session() -> None:
    p = "llm:"
    assert new_name(p, "llm:paper:paper-x:positions") == "llm:{acct:paper-x}:ledger:positions"
    assert new_name(p, "llm:paper:paper-x:idem:abc:1") == "llm:{acct:paper-x}:ledger:idem:abc:1"
    assert new_name(p, "llm:notices:paper-x:observed:k") == "llm:{acct:paper-x}:notices:observed:k"
    assert new_name(p, "llm:turn:u:s") == "llm:{sess:u:s}:turn"
    for shared in ("llm:paper:accounts", "llm:paper:ticket_seq", "llm:alerts:accounts", "llm:session:u:s"):
        assert new_name(p, shared) is None
    assert new_name(p, "llm:{acct:a}:ledger:account") is None  # already new
