"""Risk rules: each blocks and passes on hand-built portfolios, quotes and signals with configured specs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config import Settings, load_settings
from graph.risk.rules import RiskInputs, TradeIdea, Verdict, evaluate, size_for_risk
from tools.schemas import Portfolio, Position, Quote, Signal, SignalAction, SymbolSpec

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cfg() -> Settings:
    return load_settings(logging={"file": None})


def spec(cfg: Settings, symbol: str) -> SymbolSpec:
    return SymbolSpec(symbol=symbol, **cfg.symbols[symbol].model_dump())


def portfolio(
    equity: float = 10_000.0, positions: list[Position] | None = None, daily_pnl: float = 0.0
) -> Portfolio:
    return Portfolio(
        balance=equity,
        equity=equity,
        margin=0,
        free_margin=equity,
        positions=positions or [],
        daily_pnl=daily_pnl,
    )


def signal(
    symbol: str = "XAUUSD",
    confidence: float = 0.75,
    phase: str = "accumulation",
    action: SignalAction = "LONG",
) -> Signal:
    return Signal(symbol=symbol, action=action, confidence=confidence, amd_phase=phase)


def gold(cfg: Settings, **kw: object) -> RiskInputs:
    base: dict[str, object] = {
        "spec": spec(cfg, "XAUUSD"),
        "quote": Quote(symbol="XAUUSD", time=NOW, bid=4400.00, ask=4400.20),
        "portfolio": portfolio(),
        "signal": signal(),
        "now": NOW,
    }
    base.update(kw)
    return RiskInputs(**base)  # type: ignore[arg-type]


def buy(sl: float | None = 4390.20, tp: float | None = 4420.20, size: float | None = 0.1) -> TradeIdea:
    return TradeIdea(symbol="XAUUSD", side="BUY", size_lots=size, stop_loss=sl, take_profit=tp)


def blocked_with(v: Verdict, fragment: str) -> bool:
    return not v.passed and any(fragment in r for r in v.reasons)


def test_a_sound_buy_passes_with_risk_and_rr_stated(cfg: Settings) -> None:
    v = evaluate(buy(), gold(cfg), cfg.risk)
    # entry at ask 4400.20; SL 10.00 away = 100 pips; 0.1 lot * 100 oz * 10 USD = 100 USD = 1% of 10k
    assert v.passed, v.reasons
    assert v.entry_price == 4400.20
    assert v.stop_pips == 100.0 and v.take_profit_pips == 200.0
    assert v.risk_usd == 100.0 and v.risk_pct == 1.0
    assert v.reward_usd == 200.0 and v.risk_reward == 2.0


def test_sell_enters_at_bid_and_checks_sides(cfg: Settings) -> None:
    short = gold(cfg, signal=signal(action="SHORT"))
    ok = evaluate(
        TradeIdea(symbol="XAUUSD", side="SELL", size_lots=0.05, stop_loss=4410.0, take_profit=4380.0),
        short,
        cfg.risk,
    )
    assert ok.passed and ok.entry_price == 4400.00
    wrong = evaluate(
        TradeIdea(symbol="XAUUSD", side="SELL", size_lots=0.05, stop_loss=4390.0, take_profit=4380.0),
        short,
        cfg.risk,
    )
    assert blocked_with(wrong, "SELL stop loss 4390.0 must be above")


@pytest.mark.parametrize(
    ("idea", "fragment"),
    [
        (buy(sl=None), "stop loss is required"),
        (buy(sl=4405.0), "must be below the entry"),  # SL above a BUY entry (injection-style)
        (buy(tp=4395.0), "must be above the entry"),
        (buy(tp=None), "take profit is required"),
        (buy(tp=4410.20), "R:R 1.00 is below the minimum 1.5"),
    ],
)
def test_levels_rules_block(cfg: Settings, idea: TradeIdea, fragment: str) -> None:
    assert blocked_with(evaluate(idea, gold(cfg), cfg.risk), fragment)


def test_oversized_idea_is_blocked_naming_the_cap_never_reduced(cfg: Settings) -> None:
    v = evaluate(buy(size=50.0), gold(cfg), cfg.risk)
    assert blocked_with(v, "exceeds the max risk per trade of 1.0% of equity (100.00 USD)")
    assert blocked_with(v, "outside 0.01-10.0 lots")
    assert v.size_lots == 50.0  # reported as asked, not silently shrunk


def test_size_derived_from_risk_is_rounded_down_to_the_step(cfg: Settings) -> None:
    # SL 7.30 away: 1 lot risks 730 USD, cap 100 USD -> 0.1369.. lots -> 0.13
    v = evaluate(buy(sl=4392.90, tp=4420.20, size=None), gold(cfg), cfg.risk)
    assert v.passed, v.reasons
    assert v.size_lots == 0.13
    assert v.risk_usd == 94.9 and v.risk_usd <= 100.0


def test_even_min_lot_over_the_cap_blocks(cfg: Settings) -> None:
    tiny = gold(cfg, portfolio=portfolio(equity=500.0))  # cap 5 USD; 0.01 lot at 100 pips = 10 USD
    v = evaluate(buy(size=None, tp=4430.20), tiny, cfg.risk)
    assert blocked_with(v, "even the minimum 0.01 lots risks more than the 1.0% cap (5.00 USD)")


def test_lot_step_is_enforced(cfg: Settings) -> None:
    assert blocked_with(evaluate(buy(size=0.015), gold(cfg), cfg.risk), "not a multiple of the 0.01 lot step")


def test_confidence_is_read_from_the_gates_signal_only(cfg: Settings) -> None:
    low = evaluate(buy(), gold(cfg, signal=signal(confidence=0.55)), cfg.risk)
    assert blocked_with(low, "wait: signal confidence 55% is below the minimum 60%") and low.wait
    none = evaluate(buy(), gold(cfg, signal=None), cfg.risk)
    assert blocked_with(none, "wait: no current signal")
    assert evaluate(buy(), gold(cfg, signal=signal(confidence=0.60)), cfg.risk).passed


def test_manipulation_phase_blocks(cfg: Settings) -> None:
    v = evaluate(buy(), gold(cfg, signal=signal(phase="Manipulation")), cfg.risk)
    assert blocked_with(v, "AMD phase is 'manipulation'") and not v.wait


def test_daily_loss_limit(cfg: Settings) -> None:
    at_limit = gold(cfg, portfolio=portfolio(daily_pnl=-300.0))  # 3% of 10k
    assert blocked_with(evaluate(buy(), at_limit, cfg.risk), "daily loss limit reached")
    # -200 USD today and 100 USD at risk: a loss at the stop lands exactly on the limit, still allowed.
    assert evaluate(buy(), gold(cfg, portfolio=portfolio(daily_pnl=-200.0)), cfg.risk).passed


def test_daily_loss_headroom_counts_this_trades_risk(cfg: Settings) -> None:
    # -250 USD today, the limit is -300 USD (3% of 10k): this trade's 100 USD at risk would overshoot it.
    v = evaluate(buy(), gold(cfg, portfolio=portfolio(daily_pnl=-250.0)), cfg.risk)
    assert blocked_with(
        v, "this trade risks 100.00 USD; a loss would take today's P&L to -350.00 USD, past the -300.00 USD"
    )
    assert v.reasons == [r for r in v.reasons if "daily limit" in r]  # the only failing rule
    small = evaluate(buy(size=0.05), gold(cfg, portfolio=portfolio(daily_pnl=-250.0)), cfg.risk)
    assert small.passed, small.reasons  # 50 USD at risk -> -300.00, on the limit


def _pos(ticket: int, symbol: str, size: float) -> Position:
    return Position(
        ticket=ticket, symbol=symbol, type="BUY", size=size, open_price=1, current_price=1, profit=0
    )


def test_max_open_positions(cfg: Settings) -> None:
    three = portfolio(positions=[_pos(i, "EURUSD", 0.01) for i in range(1, 4)])
    assert blocked_with(evaluate(buy(), gold(cfg, portfolio=three), cfg.risk), "max open positions is 3")
    two = portfolio(positions=[_pos(i, "EURUSD", 0.01) for i in range(1, 3)])
    assert evaluate(buy(), gold(cfg, portfolio=two), cfg.risk).passed


def test_max_lots_per_symbol_counts_existing_exposure(cfg: Settings) -> None:
    limits = cfg.risk.model_copy(update={"max_risk_per_trade_pct": 50.0})
    held = portfolio(positions=[_pos(1, "XAUUSD", 1.95)])
    v = evaluate(buy(size=0.1), gold(cfg, portfolio=held), limits)
    assert blocked_with(v, "exposure 2.05 lots (open 1.95 + new 0.1) exceeds the max 2.0")
    assert evaluate(buy(size=0.05), gold(cfg, portfolio=held), limits).passed


def test_symbol_allow_list_comes_from_settings(cfg: Settings) -> None:
    limits = cfg.risk.model_copy(update={"allowed_symbols": ["EURUSD"]})
    assert blocked_with(evaluate(buy(), gold(cfg), limits), "XAUUSD is not an allowed symbol")


def test_eurusd_and_usdjpy_money_conversions(cfg: Settings) -> None:
    eur = RiskInputs(
        spec(cfg, "EURUSD"), Quote(symbol="EURUSD", time=NOW, bid=1.08000, ask=1.08008), portfolio(),
        signal("EURUSD"), NOW,
    )  # fmt: skip
    v = evaluate(
        TradeIdea(symbol="EURUSD", side="BUY", size_lots=None, stop_loss=1.07808, take_profit=1.08408),
        eur,
        cfg.risk,
    )
    # 20 pips * 10 USD/pip/lot = 200 USD per lot -> 0.5 lots for the 100 USD cap
    assert v.passed and v.size_lots == 0.5 and v.risk_usd == 100.0 and v.stop_pips == 20.0
    jpy = RiskInputs(
        spec(cfg, "USDJPY"), Quote(symbol="USDJPY", time=NOW, bid=150.000, ask=150.010), portfolio(),
        signal("USDJPY"), NOW,
    )  # fmt: skip
    w = evaluate(
        TradeIdea(symbol="USDJPY", side="SELL", size_lots=None, stop_loss=150.300, take_profit=149.400),
        jpy,
        cfg.risk,
    )
    # 30 pips = 0.30 JPY on 100k = 30,000 JPY/lot; the loss is realised at the stop 150.300, so
    # 199.60 USD/lot -> 0.5 lots = 99.80 USD (converting at the entry 150.000 would say 100.00)
    assert blocked_with(w, "the signal says LONG (75%): a SELL goes against it")
    short = RiskInputs(jpy.spec, jpy.quote, jpy.portfolio, signal("USDJPY", action="SHORT"), NOW)
    w = evaluate(
        TradeIdea(symbol="USDJPY", side="SELL", size_lots=None, stop_loss=150.300, take_profit=149.400),
        short,
        cfg.risk,
    )
    assert w.passed and w.size_lots == 0.5 and w.risk_usd == 99.8
    b = evaluate(
        TradeIdea(symbol="USDJPY", side="BUY", size_lots=None, stop_loss=149.710, take_profit=150.610),
        jpy,
        cfg.risk,
    )
    # BUY at the ask 150.010, stop 30 pips lower at 149.710: 30,000 JPY/lot / 149.71 = 200.39 USD/lot
    # -> 0.49 lots (0.5 would lose 100.19 USD at the stop) = 98.19 USD
    assert b.passed and b.size_lots == 0.49 and b.risk_usd == 98.19


@pytest.mark.parametrize(
    ("symbol", "bid", "ask", "stop_distance", "tp_distance"),
    [
        ("USDJPY", 150.000, 150.010, 3.000, 6.000),  # 300 pips: the stop price is 2% from the entry
        ("USDJPY", 150.000, 150.010, 12.500, 25.000),
        ("XAUUSD", 4400.00, 4400.20, 95.37, 200.00),
        ("EURUSD", 1.08000, 1.08008, 0.01234, 0.03000),
    ],
)
@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_risk_usd_is_what_the_broker_realises_at_the_stop(
    cfg: Settings, symbol: str, bid: float, ask: float, stop_distance: float, tp_distance: float, side: str
) -> None:
    from tools.broker.pricing import pnl_usd

    s = spec(cfg, symbol)
    entry = ask if side == "BUY" else bid
    sign = 1 if side == "BUY" else -1
    sl, tp = s.round_price(entry - sign * stop_distance), s.round_price(entry + sign * tp_distance)
    inputs = RiskInputs(
        s, Quote(symbol=symbol, time=NOW, bid=bid, ask=ask), portfolio(),
        signal(symbol, action="LONG" if side == "BUY" else "SHORT"), NOW,
    )  # fmt: skip
    v = evaluate(
        TradeIdea(symbol=symbol, side=side, size_lots=None, stop_loss=sl, take_profit=tp), inputs, cfg.risk
    )  # type: ignore[arg-type]
    assert v.passed, v.reasons
    realised_loss = -pnl_usd(s, side, v.size_lots, entry, sl)  # type: ignore[arg-type]
    assert v.risk_usd == realised_loss and 0 < realised_loss <= 100.0
    assert v.reward_usd == pnl_usd(s, side, v.size_lots, entry, tp)  # type: ignore[arg-type]
    # the size is the largest step within the cap: one more step would realise more than 1% at the stop
    assert -pnl_usd(s, side, round(v.size_lots + s.lot_step, 2), entry, sl) > 100.0  # type: ignore[arg-type]


def test_a_trade_against_the_signal_is_blocked(cfg: Settings) -> None:
    sell = TradeIdea(symbol="XAUUSD", side="SELL", size_lots=0.05, stop_loss=4410.0, take_profit=4380.0)
    v = evaluate(sell, gold(cfg, signal=signal(confidence=0.65)), cfg.risk)
    assert blocked_with(v, "the signal says LONG (65%): a SELL goes against it")
    assert not v.wait  # not a "wait": the setup points the other way
    w = evaluate(buy(), gold(cfg, signal=signal(action="SHORT")), cfg.risk)
    assert blocked_with(w, "the signal says SHORT (75%): a BUY goes against it")
    # HOLD does not block a direction; the confidence rule still applies to it
    assert evaluate(sell, gold(cfg, signal=signal(action="HOLD")), cfg.risk).passed
    held_low = evaluate(sell, gold(cfg, signal=signal(action="HOLD", confidence=0.5)), cfg.risk)
    assert blocked_with(held_low, "wait: signal confidence 50%") and held_low.wait
    off = cfg.risk.model_copy(update={"block_against_signal": False})
    assert evaluate(sell, gold(cfg, signal=signal(confidence=0.65)), off).passed


def test_size_for_risk_never_exceeds_cap(cfg: Settings) -> None:
    s = spec(cfg, "XAUUSD")
    for distance in (0.37, 1.11, 3.33, 7.77, 12.34):
        lots = size_for_risk(s, 4400.0, 4400.0 - distance, 100.0)
        assert s.money(distance, lots, 4400.0) <= 100.0
        assert s.money(distance, round(lots + s.lot_step, 2), 4400.0) > 100.0 or lots == s.max_lot


def test_a_stale_price_means_the_market_is_closed(cfg: Settings) -> None:
    from datetime import timedelta

    friday_close = Quote(symbol="XAUUSD", time=NOW - timedelta(hours=30), bid=4400.00, ask=4400.20)
    v = evaluate(buy(), gold(cfg, quote=friday_close), cfg.risk)
    assert blocked_with(v, "market closed: the last XAUUSD price is from") and "1800 min ago" in v.reasons[0]
    just_in = Quote(symbol="XAUUSD", time=NOW - timedelta(seconds=cfg.risk.max_quote_age_seconds), bid=4400.0,
                    ask=4400.20)  # fmt: skip
    assert evaluate(buy(), gold(cfg, quote=just_in), cfg.risk).passed


def test_free_margin_is_checked_before_the_trader_approves(cfg: Settings) -> None:
    # 0.1 lots of gold at the 4400.20 ask on 1:100 = 4400.20 * 100 * 0.1 / 100 = 440.02 USD of margin.
    tight = Portfolio(balance=10_000, equity=10_000, margin=9_600, free_margin=400, positions=[])
    inputs = gold(cfg, portfolio=tight)
    v = evaluate(buy(size=0.1), RiskInputs(**{**inputs.__dict__, "leverage": 100.0}), cfg.risk)
    assert blocked_with(v, "needs 440.02 USD of margin; free margin is 400.00 USD")
    roomy = RiskInputs(**{**inputs.__dict__, "leverage": 100.0, "portfolio": portfolio()})
    assert evaluate(buy(size=0.1), roomy, cfg.risk).passed
    # Unknown leverage (a platform broker): the rule defers to the broker instead of guessing.
    assert evaluate(buy(size=0.1), inputs, cfg.risk).passed
