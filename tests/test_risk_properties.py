"""Properties of the risk gate over many generated trades: whatever the inputs, a passed trade's loss at
its stop — as the paper broker would realise it — stays within the per-trade cap, and sizes are legal."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_settings
from graph.risk.rules import RiskInputs, TradeIdea, evaluate
from tools.broker.pricing import pnl_usd
from tools.market.specs import load_specs
from tools.schemas import Portfolio, Quote, Signal

CFG = load_settings(logging={"file": None})
SPECS = load_specs(CFG)
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PRICES = {"XAUUSD": (1500.0, 6000.0), "EURUSD": (0.9, 1.3), "GBPUSD": (1.1, 1.5), "USDJPY": (100.0, 170.0)}


@st.composite
def trades(draw: st.DrawFn) -> tuple[TradeIdea, RiskInputs]:
    symbol = draw(st.sampled_from(sorted(PRICES)))
    spec = SPECS[symbol]
    low, high = PRICES[symbol]
    bid = round(draw(st.floats(low, high)), spec.digits)
    ask = round(bid + spec.spread_pips * spec.pip_size, spec.digits)
    side = draw(st.sampled_from(["BUY", "SELL"]))
    entry = ask if side == "BUY" else bid
    stop_pips = draw(st.floats(1, 3000))
    sign = -1 if side == "BUY" else 1
    stop = round(entry + sign * stop_pips * spec.pip_size, spec.digits)
    take = round(entry - sign * stop_pips * draw(st.floats(1.6, 5)) * spec.pip_size, spec.digits)
    # Sizes the trader or the model might give: whole lot steps (mostly small), or none (derived by the gate).
    size = draw(st.one_of(st.none(), st.integers(1, 300).map(lambda n: round(n * spec.lot_step, 8))))
    equity = draw(st.floats(100, 1_000_000))
    portfolio = Portfolio(balance=equity, equity=equity, margin=0, free_margin=equity,
                          daily_pnl=draw(st.floats(-0.015 * equity, 0)))  # fmt: skip
    signal = Signal(symbol=symbol, action="HOLD", confidence=0.8, amd_phase="markup")
    quote = Quote(symbol=symbol, time=NOW, bid=bid, ask=ask)
    leverage = draw(st.sampled_from([None, 30.0, 100.0, 500.0]))
    inputs = RiskInputs(spec, quote, portfolio, signal, NOW, leverage)
    return TradeIdea(symbol=symbol, side=side, size_lots=size, stop_loss=stop, take_profit=take), inputs  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(trades())
def test_a_passed_trade_never_risks_more_than_the_cap(trade: tuple[TradeIdea, RiskInputs]) -> None:
    idea, inputs = trade
    verdict = evaluate(idea, inputs, CFG.risk)
    if not verdict.passed:
        assert verdict.reasons  # a block always says why
        return
    spec, lots = inputs.spec, verdict.size_lots
    cap = inputs.portfolio.equity * CFG.risk.max_risk_per_trade_pct / 100
    assert idea.stop_loss is not None
    loss = -pnl_usd(spec, idea.side, lots, verdict.entry_price, idea.stop_loss)
    assert loss <= cap + 0.01, (loss, cap)
    assert spec.min_lot <= lots <= spec.max_lot
    assert abs(round(lots / spec.lot_step) * spec.lot_step - lots) < 1e-9  # a whole number of steps
    if idea.size_lots is not None:
        assert lots == idea.size_lots  # a given size is never silently changed


@settings(max_examples=200, deadline=None)
@given(trades())
def test_the_derived_size_is_the_largest_within_the_cap(trade: tuple[TradeIdea, RiskInputs]) -> None:
    idea, inputs = trade
    unsized = TradeIdea(
        symbol=idea.symbol,
        side=idea.side,
        size_lots=None,
        stop_loss=idea.stop_loss,
        take_profit=idea.take_profit,
    )
    verdict = evaluate(unsized, inputs, CFG.risk)
    if not verdict.passed or verdict.size_lots >= inputs.spec.max_lot:
        return
    spec = inputs.spec
    cap = inputs.portfolio.equity * CFG.risk.max_risk_per_trade_pct / 100
    one_more = verdict.size_lots + spec.lot_step
    assert unsized.stop_loss is not None
    assert -pnl_usd(spec, unsized.side, one_more, verdict.entry_price, unsized.stop_loss) > cap - 0.01
