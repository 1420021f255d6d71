"""SL/TP closes triggered by later real XAUUSD bars, found independently by scanning the bars themselves."""

from __future__ import annotations

from datetime import timedelta

from tests.support.broker_support import T0, World, bars_between
from tools.broker.paper import PaperBroker
from tools.market.csv_store import CsvMarketData
from tools.schemas import Bar, OrderRequest, Quote

SPREAD = 0.2  # XAUUSD: 2 pips of 0.10; the data are bid prices, the ask is bid + spread
ONE_MINUTE = timedelta(minutes=1)


def first(bars: list[Bar], crosses: object) -> Bar:
    hit = next((b for b in bars if crosses(b)), None)  # type: ignore[operator]
    assert hit is not None, "the level is never reached within the scanned history; pick a closer one"
    return hit


async def bracket(market: CsvMarketData, sl_below: float, tp_above: float) -> tuple[Quote, float, float]:
    """The current XAUUSD quote, a stop `sl_below` under its bid and a target `tp_above` over its ask."""
    quote = await market.get_quote("XAUUSD")
    return quote, round(quote.bid - sl_below, 2), round(quote.ask + tp_above, 2)


async def test_buy_stop_loss_closes_on_the_first_bar_whose_low_reaches_it(
    broker: PaperBroker, market_world: World
) -> None:
    clock, market, _ = market_world
    quote, sl, tp = await bracket(market, 8.0, 200.0)
    opened = await broker.place_order(
        OrderRequest(symbol="XAUUSD", action="BUY", size=0.2, stop_loss=sl, take_profit=tp), "buy-sl"
    )
    bars = await bars_between(market, clock, quote.time, hours=48)
    hit = first(bars, lambda b: b.low <= sl)
    assert hit.time > T0  # reached later: several bars checked without a hit before this one
    expected_close = min(sl, hit.open)  # a bar opening below the stop (a gap) fills at its open

    clock.set(hit.time - ONE_MINUTE)  # the bars before it are checked and do not close the position
    assert len((await broker.get_portfolio()).positions) == 1
    clock.set(hit.time + ONE_MINUTE - timedelta(seconds=1))  # that bar has not closed yet
    assert [p.ticket for p in (await broker.get_portfolio()).positions] == [opened.ticket]
    clock.set(hit.time + ONE_MINUTE)
    portfolio = await broker.get_portfolio()
    assert portfolio.positions == []
    trade = (await broker.history())[0]
    assert (trade.reason, trade.close_time, trade.close_price) == ("sl", hit.time, expected_close)
    # P&L by hand: (close - open) x 100 oz x 0.2 lots, in USD.
    pnl = round((expected_close - opened.executed_price) * 100 * 0.2, 2)  # type: ignore[operator]
    assert trade.pnl_usd == pnl < 0
    assert portfolio.balance == portfolio.equity == round(10_000 + pnl, 2)
    assert portfolio.margin == 0.0 and portfolio.daily_pnl == pnl


async def test_sell_take_profit_uses_the_ask_side_of_the_bar(
    broker: PaperBroker, market_world: World
) -> None:
    clock, market, _ = market_world
    quote = await market.get_quote("XAUUSD")
    bars = await bars_between(market, clock, quote.time, hours=48)
    # A level the bid touches a bar or more before the ask does: only the ask (bid + spread) may close it.
    tp = next(
        level
        for level in (round(quote.bid - 2.0 - i * 0.05, 2) for i in range(200))
        if first(bars, lambda b, lv=level: b.low <= lv).time
        < first(bars, lambda b, lv=level: round(b.low + SPREAD, 2) <= lv).time
    )
    bid_touch = first(bars, lambda b: b.low <= tp)
    hit = first(bars, lambda b: round(b.low + SPREAD, 2) <= tp)
    opened = await broker.place_order(
        OrderRequest(symbol="XAUUSD", action="SELL", size=0.3, stop_loss=quote.ask + 200, take_profit=tp),
        "tp",
    )
    assert opened.executed_price == quote.bid
    clock.set(bid_touch.time + ONE_MINUTE)  # the bid reached the TP, the ask did not: still open
    assert len((await broker.get_portfolio()).positions) == 1
    clock.set(hit.time + timedelta(hours=2))  # several bars later: the close is dated at the crossing bar
    assert (await broker.get_portfolio()).positions == []
    trade = (await broker.history())[0]
    assert (trade.reason, trade.close_time, trade.close_price) == ("tp", hit.time, tp)
    assert trade.pnl_usd == round((quote.bid - tp) * 100 * 0.3, 2) > 0


async def test_first_level_reached_wins_and_sync_covers_every_account(
    broker: PaperBroker, market_world: World
) -> None:
    clock, market, _ = market_world
    quote, sl, tp = await bracket(market, 2.5, 2.5)
    for account in ("alice", "bob"):
        order = OrderRequest(
            symbol="XAUUSD", action="BUY", size=0.1, stop_loss=sl, take_profit=tp, account_id=account
        )
        assert (await broker.place_order(order, "same-key")).success
    bars = await bars_between(market, clock, quote.time, hours=48)
    hit = first(bars, lambda b: b.low <= sl or b.high >= tp)
    reason = "sl" if hit.low <= sl else "tp"  # both in one bar: the stop is assumed first
    clock.set(hit.time + ONE_MINUTE)
    closed = await broker.sync()  # the background ticker's call: all accounts
    assert sorted(t.ticket for t in closed) == sorted(
        [(await broker.history(a))[0].ticket for a in ("alice", "bob")]
    )
    assert {(t.reason, t.close_time) for t in closed} == {(reason, hit.time)}
    assert await broker.sync() == []  # already closed: a second pass changes nothing
    assert len(await broker.history("alice")) == 1
