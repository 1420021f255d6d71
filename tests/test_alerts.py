"""RedisAlerts on the real Redis and XAUUSD history: alerts fire on the first real bar reaching the level."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from config import Settings
from tests.support.broker_support import World, bars_between
from tools.broker.alerts import RedisAlerts
from tools.protocols import UnknownSymbolError
from tools.schemas import AlertRequest


@pytest.fixture
def alerts(redis_client: aioredis.Redis, market_world: World, settings: Settings) -> RedisAlerts:
    clock, market, _ = market_world
    return RedisAlerts(redis_client, market, clock, settings)


async def test_above_and_below_alerts_trigger_on_the_first_crossing_bar(
    alerts: RedisAlerts, market_world: World
) -> None:
    clock, market, _ = market_world
    quote = await market.get_quote("XAUUSD")
    up = await alerts.set_alert(
        AlertRequest(symbol="xauusd", condition="above", price=quote.bid + 6, message="up")
    )
    down = await alerts.set_alert(AlertRequest(symbol="XAUUSD", condition="below", price=quote.bid - 6))
    assert up.status == down.status == "active" and up.alert_id != down.alert_id and up.symbol == "XAUUSD"
    assert up.created_at == clock.now()

    bars = await bars_between(market, clock, quote.time, hours=72)
    up_bar = next(b for b in bars if b.high >= up.price)
    down_bar = next(b for b in bars if b.low <= down.price)
    first_bar, later_bar = sorted([up_bar, down_bar], key=lambda b: b.time)
    assert first_bar.time < later_bar.time, "pick levels reached in different bars"

    clock.set(first_bar.time)  # that bar has not closed: nothing triggers yet
    assert await alerts.check() == []
    clock.set(first_bar.time + timedelta(minutes=1))
    fired = await alerts.check()
    assert [a.alert_id for a in fired] == [up.alert_id if first_bar is up_bar else down.alert_id]
    clock.set(later_bar.time + timedelta(minutes=30))
    listed = {a.alert_id: a for a in await alerts.list_alerts()}  # list_alerts checks first
    for alert, crossing in ((up, up_bar), (down, down_bar)):
        got = listed[alert.alert_id]
        level_or_gap = (
            max(alert.price, crossing.open) if alert.condition == "above" else min(alert.price, crossing.open)
        )
        assert (got.status, got.triggered_at, got.triggered_price) == (
            "triggered",
            crossing.time,
            level_or_gap,
        )
    assert listed[up.alert_id].message == "up"
    assert await alerts.check() == []  # triggered alerts stay triggered, once


async def test_alerts_persist_per_account_and_unknown_symbols_are_refused(
    alerts: RedisAlerts, market_world: World, redis_url: str, settings: Settings
) -> None:
    clock, market, _ = market_world
    quote = await market.get_quote("XAUUSD")
    mine = await alerts.set_alert(AlertRequest(symbol="XAUUSD", condition="above", price=quote.bid + 500))
    await alerts.set_alert(AlertRequest(symbol="XAUUSD", condition="below", price=1.0), account_id="other")
    fresh = aioredis.from_url(redis_url)  # bytes replies: the service must cope with either client
    try:
        again = RedisAlerts(fresh, market, clock, settings)
        assert [a.alert_id for a in await again.list_alerts()] == [mine.alert_id]
        assert len(await again.list_alerts("other")) == 1
    finally:
        await fresh.aclose()
    with pytest.raises(UnknownSymbolError, match="BTCUSD"):
        await alerts.set_alert(AlertRequest(symbol="BTCUSD", condition="above", price=1.0))
    # EURUSD is configured but has no data loaded in this market: no alert can ever be checked.
    with pytest.raises(UnknownSymbolError):
        await alerts.set_alert(AlertRequest(symbol="EURUSD", condition="above", price=1.0))


async def test_an_alert_set_again_under_its_key_is_created_once(alerts: RedisAlerts) -> None:
    """A chat turn run again after a crash sets its alert under the same key: one alert, the first one."""
    request = AlertRequest(symbol="XAUUSD", condition="above", price=9000.0, message="once")
    first = await alerts.set_alert(request, key="turn-1:alert")
    again = await alerts.set_alert(request, key="turn-1:alert")
    other = await alerts.set_alert(request, key="turn-2:alert")
    unkeyed = [await alerts.set_alert(request), await alerts.set_alert(request)]
    assert again == first and other.alert_id != first.alert_id
    ids = [a.alert_id for a in await alerts.list_alerts()]
    assert sorted(ids) == sorted({first.alert_id, other.alert_id, *(a.alert_id for a in unkeyed)})
    assert len(ids) == 4
