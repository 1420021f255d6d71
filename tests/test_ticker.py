"""The ticker closes positions at SL/TP and fires alerts as the clock advances, on untouched accounts too."""

from datetime import timedelta

from server.ticker import tick
from tools.market.clock import ManualClock
from tools.schemas import AlertRequest, OrderRequest
from tools.services import Services


async def test_tick_closes_stops_and_fires_alerts(services: Services, clock: ManualClock) -> None:
    quote = await services.market.get_quote("XAUUSD")
    order = OrderRequest(symbol="XAUUSD", action="BUY", size=0.01, stop_loss=round(quote.bid - 1.0, 2),
                         take_profit=round(quote.ask + 1.0, 2), account_id="acct-a")  # fmt: skip
    placed = await services.broker.place_order(order, idempotency_key="tick-1")
    assert placed.success, placed.message
    await services.alerts.set_alert(
        AlertRequest(symbol="XAUUSD", condition="above", price=round(quote.ask + 0.5, 2)), "acct-b"
    )
    assert await tick(services) == (0, 0)  # the clock has not moved: nothing can have been reached
    clock.advance(timedelta(hours=6))
    # What the bars say should have happened, computed from the bars themselves:
    bars = await services.market.bars_since("XAUUSD", quote.time)
    assert any(b.low <= order.stop_loss or b.high >= (order.take_profit or 0) for b in bars)
    expect_alert = any(b.high >= quote.ask + 0.5 for b in bars)
    closed, fired = await tick(services)
    assert closed == 1 and fired == int(expect_alert)
    assert (await services.broker.get_portfolio("acct-a")).positions == []
    history = await services.broker.history("acct-a")  # type: ignore[attr-defined]
    assert len(history) == 1 and history[0].reason in {"sl", "tp"}
    alerts = await services.alerts.list_alerts("acct-b")
    assert [a.status for a in alerts] == (["triggered"] if expect_alert else ["active"])
