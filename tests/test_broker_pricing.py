"""Paper-trading arithmetic by hand: margin and P&L for USD-quoted and USD-based pairs, lots, stops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config import load_settings
from tools.broker import pricing
from tools.market.specs import load_specs
from tools.schemas import Bar, SymbolSpec

SPECS = load_specs(load_settings())
T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def bar(open_: float, high: float, low: float, close: float) -> Bar:
    return Bar(time=T, open=open_, high=high, low=low, close=close)


def test_margin_usd_for_usd_quoted_and_usd_based_pairs() -> None:
    # XAUUSD: 0.5 lots x 100 oz x 5,000 USD / 100 leverage = 2,500 USD.
    assert pricing.margin_usd(SPECS["XAUUSD"], 0.5, 5000.0, 100) == 2500.0
    # EURUSD: 1 lot x 100,000 EUR x 1.1 USD / 30 = 3,666.67 USD.
    assert pricing.margin_usd(SPECS["EURUSD"], 1.0, 1.1, 30) == 3666.67
    # USDJPY: the base currency is USD, so 0.2 lots x 100,000 USD / 100 = 200 USD whatever the rate.
    assert pricing.margin_usd(SPECS["USDJPY"], 0.2, 150.0, 100) == 200.0


def test_pnl_usd_by_side_and_currency() -> None:
    # Gold BUY 0.1 from 5000.00 to 5012.34: 12.34 x 100 x 0.1 = 123.40 USD.
    assert pricing.pnl_usd(SPECS["XAUUSD"], "BUY", 0.1, 5000.0, 5012.34) == 123.4
    assert pricing.pnl_usd(SPECS["XAUUSD"], "SELL", 0.1, 5000.0, 5012.34) == -123.4
    # USDJPY SELL 1 lot from 150.000 to 149.000: 1.000 JPY x 100,000 = 100,000 JPY / 149 = 671.14 USD.
    assert pricing.pnl_usd(SPECS["USDJPY"], "SELL", 1.0, 150.0, 149.0) == 671.14


@pytest.mark.parametrize(
    ("lots", "ok"), [(0.01, True), (10.0, True), (0.07, True), (0.009, False), (10.01, False), (0.075, False)]
)
def test_lot_bounds_and_step(lots: float, ok: bool) -> None:
    assert (pricing.lots_error(SPECS["XAUUSD"], lots) is None) is ok


def test_stop_assumed_first_when_one_bar_reaches_both_levels() -> None:
    spec: SymbolSpec = SPECS["XAUUSD"]
    wide = bar(5000.0, 5010.0, 4990.0, 5001.0)
    assert pricing.find_exit(spec, "BUY", 4995.0, 5005.0, [wide]) == pricing.Exit(4995.0, T, "sl")
    # SELL levels are met by the ask = bid + 0.20: high 5010.00 -> ask 5010.20 reaches an SL of 5010.10.
    assert pricing.find_exit(spec, "SELL", 5010.1, 4995.0, [wide]) == pricing.Exit(5010.1, T, "sl")
    assert pricing.find_exit(spec, "SELL", 5010.3, 4990.1, [wide]) is None  # ask spans 4990.20..5010.20


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    gap_down = bar(4980.0, 4985.0, 4975.0, 4982.0)
    assert pricing.find_exit(SPECS["XAUUSD"], "BUY", 4995.0, None, [gap_down]) == pricing.Exit(
        4980.0, T, "sl"
    )
