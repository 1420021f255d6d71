"""Modify rules: levels on the right side, and a wider stop may not exceed the per-trade risk limit."""

from datetime import UTC, datetime

from config import load_settings
from graph.risk.positions import Modify, check_modify, risk_at_stop
from tools.market.specs import load_specs
from tools.schemas import Portfolio, Position

SETTINGS = load_settings(logging={"file": None})
XAU = load_specs(SETTINGS)["XAUUSD"]
LIMITS = SETTINGS.risk  # 1% of equity per trade
PORTFOLIO = Portfolio(balance=10_000, equity=10_000, margin=0, free_margin=10_000)


def long(stop: float | None) -> Position:
    return Position(
        ticket=7,
        symbol="XAUUSD",
        type="BUY",
        size=0.2,
        open_price=4000.0,
        current_price=4000.0,
        profit=0.0,
        stop_loss=stop,
        take_profit=4020.0,
        open_time=datetime(2026, 3, 2, tzinfo=UTC),
    )


def verdict(change: Modify) -> tuple[bool, list[str]]:
    checks = check_modify(change, XAU, PORTFOLIO, LIMITS)
    return all(c.passed for c in checks), [c.reason for c in checks if not c.passed]


def test_risk_at_stop_is_the_usd_move_from_the_exit_price() -> None:
    # 0.2 lots x 100 oz x 5.00 USD = 100 USD
    assert risk_at_stop(Modify(long(3995.0), 4000.0, None, None), 3995.0, XAU) == 100.0
    assert risk_at_stop(Modify(long(None), 4000.0, None, None), None, XAU) is None


def test_widening_the_stop_beyond_the_limit_is_blocked() -> None:
    ok, reasons = verdict(Modify(long(3995.0), 4000.0, stop_loss=3990.0, take_profit=None))
    # 10 USD x 0.2 x 100 = 200 USD > 1% of 10,000 = 100 USD
    assert not ok and "200.00 USD at risk" in reasons[0] and "100.00 USD" in reasons[0]


def test_widening_within_the_limit_and_tightening_pass() -> None:
    assert verdict(Modify(long(3997.0), 4000.0, stop_loss=3995.5, take_profit=None))[0]  # 90 USD
    # Tightening always passes, even when the old stop was already beyond today's limit.
    assert verdict(Modify(long(3980.0), 4000.0, stop_loss=3985.0, take_profit=None))[0]


def test_adding_a_stop_to_an_unprotected_position_is_capped_too() -> None:
    assert not verdict(Modify(long(None), 4000.0, stop_loss=3980.0, take_profit=None))[0]
    assert verdict(Modify(long(None), 4000.0, stop_loss=3996.0, take_profit=None))[0]


def test_levels_must_be_on_the_right_side_and_something_must_change() -> None:
    ok, reasons = verdict(Modify(long(3995.0), 4000.0, stop_loss=4001.0, take_profit=None))
    assert not ok and "must be below the price 4000.0" in reasons[0]
    ok, reasons = verdict(Modify(long(3995.0), 4000.0, stop_loss=None, take_profit=3999.0))
    assert not ok and "must be above the price 4000.0" in reasons[0]
    ok, reasons = verdict(Modify(long(3995.0), 4000.0, stop_loss=None, take_profit=None))
    assert not ok and reasons == ["give a new stop loss and/or take profit"]


def test_usdjpy_risk_at_stop_is_what_the_broker_realises_there() -> None:
    from tools.broker.pricing import pnl_usd

    jpy = load_specs(SETTINGS)["USDJPY"]
    for side, stop in (("BUY", 147.0), ("SELL", 153.0)):
        position = long(stop).model_copy(update={"symbol": "USDJPY", "type": side, "size": 0.05})
        # 3.00 JPY x 100,000 x 0.05 lots = 15,000 JPY, worth 15,000 / stop USD when the stop fills
        realised = -pnl_usd(jpy, side, 0.05, 150.0, stop)  # type: ignore[arg-type]
        assert risk_at_stop(Modify(position, 150.0, None, None), stop, jpy) == realised
        assert realised == round(15_000 / stop, 2)
    # the BUY stop is below the price: the same JPY loss is more USD than at the entry (102.04 > 100)
    buy = long(147.0).model_copy(update={"symbol": "USDJPY", "size": 0.05})
    assert risk_at_stop(Modify(buy, 150.0, None, None), 147.0, jpy) == 102.04
