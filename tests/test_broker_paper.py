"""PaperBroker on the real Redis and the real XAUUSD history: fills, idempotency, margin, P&L, persistence."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from config import Settings, load_settings
from tests.support.broker_support import T0, World
from tools.broker.paper import PaperBroker
from tools.protocols import UnknownSymbolError
from tools.schemas import OrderRequest, Position


def buy(lots: float = 0.1, sl_below: float = 5.0, bid: float = 0.0, **kw: object) -> OrderRequest:
    return OrderRequest(symbol="XAUUSD", action="BUY", size=lots, stop_loss=round(bid - sl_below, 2), **kw)


async def test_buy_fills_at_ask_and_sell_at_bid_with_the_spread(
    broker: PaperBroker, market_world: World
) -> None:
    _, market, specs = market_world
    quote = await market.get_quote("XAUUSD")
    # XAUUSD spread is 2 pips of 0.10 USD: the ask is 0.20 above the bid.
    assert round(quote.ask - quote.bid, 2) == round(specs["XAUUSD"].spread_pips * 0.1, 2) == 0.2
    bought = await broker.place_order(buy(bid=quote.bid), "k-buy")
    sold = await broker.place_order(
        OrderRequest(symbol="XAUUSD", action="SELL", size=0.1, stop_loss=quote.ask + 5), "k-sell"
    )
    assert bought.success and sold.success, (bought.message, sold.message)
    assert bought.executed_price == quote.ask and sold.executed_price == quote.bid
    assert bought.slippage == sold.slippage == 0.0
    assert bought.ticket != sold.ticket
    portfolio = await broker.get_portfolio()
    by_ticket: dict[int | None, Position] = {p.ticket: p for p in portfolio.positions}
    # Marked at the closing side: the BUY at the bid, the SELL at the ask, each losing the spread.
    assert by_ticket[bought.ticket].current_price == quote.bid
    assert by_ticket[sold.ticket].current_price == quote.ask
    assert by_ticket[bought.ticket].profit == by_ticket[sold.ticket].profit == round(-0.2 * 100 * 0.1, 2)


async def test_slippage_moves_the_fill_against_the_trader(
    redis_client: aioredis.Redis, market_world: World, settings: Settings
) -> None:
    clock, market, specs = market_world
    slipped = settings.model_copy(update={"broker": settings.broker.model_copy(update={"slippage_pips": 3})})
    paper = PaperBroker(redis_client, market, clock, specs, slipped)
    quote = await market.get_quote("XAUUSD")
    bought = await paper.place_order(buy(bid=quote.bid), "s-buy")
    sold = await paper.place_order(
        OrderRequest(symbol="XAUUSD", action="SELL", size=0.1, stop_loss=quote.ask + 5), "s-sell"
    )
    assert bought.executed_price == round(quote.ask + 0.3, 2)  # 3 pips x 0.10
    assert sold.executed_price == round(quote.bid - 0.3, 2)
    assert bought.slippage == sold.slippage == 0.3


async def test_same_key_twice_places_one_order(broker: PaperBroker, market_world: World) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    first = await broker.place_order(buy(bid=quote.bid), "proposal-1")
    again = await broker.place_order(buy(bid=quote.bid), "proposal-1")
    assert first.success and not first.duplicate
    assert again.duplicate and again.ticket == first.ticket and again.executed_price == first.executed_price
    assert len((await broker.get_portfolio()).positions) == 1
    assert len(await broker.fills()) == 1


async def test_concurrent_same_key_places_one_order(broker: PaperBroker, market_world: World) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    await broker.place_order(buy(bid=quote.bid), "warm-up")  # the account exists: only the key stops a race
    for round_ in range(4):  # interleavings vary from run to run; several rounds make a race show up
        calls = [broker.place_order(buy(bid=quote.bid), f"race-{round_}") for _ in range(10)]
        results = await asyncio.gather(*calls)
        originals = [r for r in results if not r.duplicate]
        assert len(originals) == 1
        assert {r.ticket for r in results} == {originals[0].ticket}
    assert len((await broker.get_portfolio()).positions) == 1 + 4


async def test_two_brokers_on_separate_connections_place_one_order(
    redis_url: str, market_world: World, settings: Settings
) -> None:
    clock, market, specs = market_world
    one, two = aioredis.from_url(redis_url), aioredis.from_url(redis_url, decode_responses=True)
    try:
        a = PaperBroker(one, market, clock, specs, settings)
        b = PaperBroker(two, market, clock, specs, settings)
        quote = await market.get_quote("XAUUSD")
        await a.place_order(buy(bid=quote.bid), "warm-up")  # the account exists before the race
        calls = [x.place_order(buy(bid=quote.bid), "shared-key") for x in (a, b) * 6]
        # Distinct keys at the same time must all apply: no update is lost under contention.
        calls += [x.place_order(buy(bid=quote.bid), f"own-{i}") for i, x in enumerate((a, b) * 3)]
        results = await asyncio.gather(*calls)
        shared = results[:12]
        assert sum(not r.duplicate for r in shared) == 1 and len({r.ticket for r in shared}) == 1
        assert all(r.success and not r.duplicate for r in results[12:])
        positions = (await b.get_portfolio()).positions
        assert len(positions) == 8 and len({p.ticket for p in positions}) == 8
        assert (await a.get_portfolio()) == (await b.get_portfolio())
    finally:
        await one.aclose()
        await two.aclose()


async def test_key_is_scoped_per_account_and_reuse_for_another_request_changes_nothing(
    broker: PaperBroker, market_world: World
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    mine = await broker.place_order(buy(bid=quote.bid), "k")
    theirs = await broker.place_order(buy(bid=quote.bid, account_id="other"), "k")
    assert mine.success and theirs.success and not theirs.duplicate  # (tickets are per account: both #1)
    assert [p.size for p in (await broker.get_portfolio("other")).positions] == [0.1]
    reused = await broker.place_order(buy(lots=0.5, bid=quote.bid), "k")
    assert reused.duplicate and reused.ticket == mine.ticket and "different request" in reused.message
    assert [p.size for p in (await broker.get_portfolio()).positions] == [0.1]


async def test_margin_and_free_margin(broker: PaperBroker, market_world: World, settings: Settings) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    result = await broker.place_order(buy(lots=0.5, bid=quote.bid), "m1")
    portfolio = await broker.get_portfolio()
    # 0.5 lots x 100 oz x price / leverage 100, in USD.
    expected_margin = round(0.5 * 100 * result.executed_price / settings.broker.leverage, 2)  # type: ignore[operator]
    assert portfolio.margin == expected_margin
    floating = round((quote.bid - quote.ask) * 100 * 0.5, 2)
    assert portfolio.balance == 10_000.0
    assert portfolio.equity == round(10_000.0 + floating, 2)
    assert portfolio.free_margin == round(portfolio.equity - expected_margin, 2)


async def test_insufficient_free_margin_is_refused(broker: PaperBroker, market_world: World) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    # Gold near 5,392: 2 lots hold about 10,784 USD of margin, more than the 10,000 USD account.
    assert 2 * 100 * quote.ask / 100 > 10_000
    refused = await broker.place_order(buy(lots=2, bid=quote.bid), "big")
    assert not refused.success and "insufficient free margin" in refused.message
    assert (await broker.get_portfolio()).positions == []
    assert (await broker.place_order(buy(lots=1.5, bid=quote.bid), "fits")).success


@pytest.mark.parametrize(
    ("lots", "sl_below", "tp_above", "expected"),
    [
        (0.005, 5.0, None, "outside"),
        (11.0, 5.0, None, "outside"),
        (0.015, 5.0, None, "lot step"),
        (0.1, -1.0, None, "stop loss"),  # SL above the bid for a BUY
        (0.1, 0.0, None, "stop loss"),  # SL at the bid would close on the next tick
        (0.1, 5.0, 0.0, "take profit"),  # TP at the ask for a BUY
    ],
)
async def test_invalid_orders_are_refused_with_a_reason(
    broker: PaperBroker,
    market_world: World,
    lots: float,
    sl_below: float,
    tp_above: float | None,
    expected: str,
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    tp = None if tp_above is None else round(quote.ask + tp_above, 2)
    result = await broker.place_order(buy(lots=lots, sl_below=sl_below, bid=quote.bid, take_profit=tp), "bad")
    assert not result.success and expected in result.message
    assert (await broker.get_portfolio()).positions == []


async def test_sell_stops_on_the_wrong_side_and_unknown_symbol(
    broker: PaperBroker, market_world: World
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    wrong_sl = OrderRequest(
        symbol="XAUUSD", action="SELL", size=0.1, stop_loss=quote.bid
    )  # inside the spread
    assert "above the ask" in (await broker.place_order(wrong_sl, "w1")).message
    wrong_tp = OrderRequest(
        symbol="XAUUSD", action="SELL", size=0.1, stop_loss=quote.ask + 5, take_profit=quote.bid
    )
    assert "below the bid" in (await broker.place_order(wrong_tp, "w2")).message
    with pytest.raises(UnknownSymbolError, match="BTCUSD"):
        await broker.place_order(OrderRequest(symbol="BTCUSD", action="BUY", size=0.1, stop_loss=1), "w3")


async def test_manual_close_realizes_pnl_and_daily_weekly_pnl(
    broker: PaperBroker, market_world: World
) -> None:
    clock, market, _ = market_world
    opened_quote = await market.get_quote("XAUUSD")
    opened = await broker.place_order(buy(lots=0.25, sl_below=50, bid=opened_quote.bid), "open")
    clock.advance(timedelta(hours=1))
    later = await market.get_quote("XAUUSD")
    position = (await broker.get_portfolio()).positions[0]
    floating = round((later.bid - opened_quote.ask) * 100 * 0.25, 2)  # BUY marked at the bid
    assert position.current_price == later.bid and position.profit == floating
    closed = await broker.close_position(opened.ticket, "close-1")  # type: ignore[arg-type]
    assert closed.success and closed.executed_price == later.bid
    again = await broker.close_position(opened.ticket, "close-1")  # type: ignore[arg-type]
    assert again.duplicate and again.executed_price == later.bid
    other_key = await broker.close_position(opened.ticket, "close-2")  # type: ignore[arg-type]
    assert not other_key.success and "no open position" in other_key.message
    portfolio = await broker.get_portfolio()
    assert portfolio.positions == [] and portfolio.balance == portfolio.equity == round(10_000 + floating, 2)
    assert portfolio.daily_pnl == portfolio.weekly_pnl == floating
    trade = (await broker.history())[0]
    assert (trade.reason, trade.close_price, trade.pnl_usd) == ("manual", later.bid, floating)
    clock.set(T0 + timedelta(days=1))  # Tuesday: a new day in the same ISO week
    next_day = await broker.get_portfolio()
    assert next_day.daily_pnl == 0.0 and next_day.weekly_pnl == floating
    clock.set(T0 + timedelta(days=7))  # next Monday
    assert (await broker.get_portfolio()).weekly_pnl == 0.0


async def test_modify_moves_stops_validates_them_and_is_idempotent(
    broker: PaperBroker, market_world: World
) -> None:
    quote = await market_world[1].get_quote("XAUUSD")
    ticket = (await broker.place_order(buy(bid=quote.bid), "o")).ticket
    assert ticket is not None
    moved = await broker.modify_position(
        ticket,
        stop_loss=round(quote.bid - 2, 2),
        take_profit=round(quote.ask + 9, 2),
        idempotency_key="mod-1",
    )
    assert moved.success
    replay = await broker.modify_position(
        ticket, stop_loss=round(quote.bid - 3, 2), take_profit=None, idempotency_key="mod-1"
    )
    assert replay.duplicate
    wrong = await broker.modify_position(
        ticket, stop_loss=round(quote.bid + 1, 2), take_profit=None, idempotency_key="mod-2"
    )
    assert not wrong.success and "below the bid" in wrong.message
    position = (await broker.get_portfolio()).positions[0]
    assert (position.stop_loss, position.take_profit) == (round(quote.bid - 2, 2), round(quote.ask + 9, 2))


async def test_state_survives_a_new_broker_on_a_new_connection(
    broker: PaperBroker, redis_url: str, market_world: World, settings: Settings
) -> None:
    clock, market, specs = market_world
    quote = await market.get_quote("XAUUSD")
    await broker.place_order(buy(bid=quote.bid), "persist")
    before = await broker.get_portfolio()
    fresh = aioredis.from_url(redis_url, decode_responses=True)
    try:
        reborn = PaperBroker(fresh, market, clock, specs, settings)
        assert await reborn.get_portfolio() == before
        assert (await reborn.place_order(buy(bid=quote.bid), "persist")).duplicate
    finally:
        await fresh.aclose()


async def test_accounts_start_with_the_configured_balance_and_keys_use_the_prefix(
    redis_client: aioredis.Redis, market_world: World, settings: Settings, redis_url: str
) -> None:
    clock, market, specs = market_world
    rich = load_settings(
        redis_url=redis_url, redis={"prefix": settings.redis.prefix}, broker={"initial_balance": 50_000}
    )
    paper = PaperBroker(redis_client, market, clock, specs, rich)
    assert (await paper.get_portfolio("fresh")).balance == 50_000.0
    quote = await market.get_quote("XAUUSD")
    await paper.place_order(buy(bid=quote.bid, account_id="fresh"), "p")
    keys = [k async for k in redis_client.scan_iter(match=f"{settings.redis.prefix}*")]
    # The ledger and the account's notice stream under the account's hash tag (one Cluster slot), and the
    # shared set of accounts the ticker walks.
    tagged = f"{settings.redis.prefix}{{acct:fresh}}:"
    assert {k for k in keys if not k.startswith(tagged)} == {f"{settings.redis.prefix}paper:accounts"}
    assert {tagged + "ledger:account", tagged + "ledger:positions", tagged + "notices"} <= set(keys)
