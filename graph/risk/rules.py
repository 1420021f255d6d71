"""Deterministic risk rules for trade ideas (tools.schemas.TradeIdea): one rule per function, each with a
reason; no model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from config.settings import RiskSettings
from graph.approval import VerdictSummary
from tools.broker import pricing
from tools.broker.pricing import LevelKind, lot_problem, margin_usd, wrong_side
from tools.schemas import Portfolio, Quote, Side, Signal, SymbolSpec, TradeIdea

# Money is compared after rounding to cents; this absorbs the half-cent of that rounding.
CENT = 0.01


@dataclass(frozen=True)
class RiskInputs:
    spec: SymbolSpec
    quote: Quote
    portfolio: Portfolio
    signal: Signal | None  # the CURRENT signal for the symbol, fetched by the gate — never model text
    now: datetime  # market time (the replay clock), to tell a live price from the last one before a close
    leverage: float | None = None  # the account's; None = unknown, margin is left to the broker


@dataclass(frozen=True)
class RuleResult:
    passed: bool
    reason: str
    wait: bool = False  # blocked only until the signal confirms the setup (not a verdict on the trade)


def judged(passed: bool, if_passed: str, if_blocked: str) -> RuleResult:
    """A rule's answer: pass or block, with the reason that fits."""
    return RuleResult(passed, if_passed if passed else if_blocked)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]  # the blocking reasons when blocked; every check's reason when passed
    size_lots: float
    entry_price: float
    risk_usd: float
    risk_pct: float
    reward_usd: float
    risk_reward: float | None
    stop_pips: float | None
    take_profit_pips: float | None
    checks: list[RuleResult] = field(default_factory=list)
    wait: bool = False  # blocked only because the signal says wait (low confidence)

    def summary(self) -> VerdictSummary:
        return VerdictSummary(passed=self.passed, reasons=list(self.reasons))


@dataclass(frozen=True)
class _Sized:
    """The numbers the money rules share, computed once."""

    entry: float
    size_lots: float
    risk_usd: float
    max_risk_usd: float
    reward_usd: float


def entry_price(side: Side, quote: Quote, spec: SymbolSpec) -> float:
    """A market BUY fills at the ask, a SELL at the bid (tools.broker.pricing.entry_price)."""
    return pricing.entry_price(spec, side, quote)


def max_risk_usd(portfolio: Portfolio, limits: RiskSettings) -> float:
    return round(max(portfolio.equity, 0.0) * limits.max_risk_per_trade_pct / 100, 2)


def move_usd(spec: SymbolSpec, entry: float, exit_price: float, lots: float) -> float:
    """USD value of the move from `entry` to `exit_price` on `lots`, converted at `exit_price`.

    The paper broker (tools.broker.pricing.pnl_usd) converts a P&L at the close price, so a loss at the
    stop is worth its JPY amount at the stop price, not at the entry: for a USDJPY BUY the stop is lower
    and the same JPY loss is more USD.
    """
    return abs(spec.money(abs(entry - exit_price), lots, exit_price))


def size_for_risk(spec: SymbolSpec, entry: float, stop_loss: float, risk_usd: float) -> float:
    """Largest lot size (a multiple of the step) whose loss at the stop stays within `risk_usd`; 0 if none."""
    per_lot_usd = move_usd(spec, entry, stop_loss, 1.0)
    if per_lot_usd <= 0:
        return 0.0
    lots = spec.round_lots_down(min(risk_usd / per_lot_usd, spec.max_lot))
    # money() rounds to cents, so step down once if rounding pushed the risk over the cap.
    while lots > 0 and move_usd(spec, entry, stop_loss, lots) > risk_usd + CENT / 2:
        lots = spec.round_lots_down(lots - spec.lot_step)
    return lots


# --- rules that need no sizing -------------------------------------------------------------------------


def rule_symbol_allowed(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    allowed = [s.upper() for s in limits.allowed_symbols]
    if idea.symbol.upper() not in allowed or inputs.spec.symbol.upper() != idea.symbol.upper():
        return RuleResult(False, f"{idea.symbol} is not an allowed symbol (allowed: {', '.join(allowed)})")
    return RuleResult(True, f"{idea.symbol} is an allowed symbol")


def _level_side(
    idea: TradeIdea, inputs: RiskInputs, name: str, level: float | None, missing: str
) -> RuleResult:
    """The level is given and on its side of the entry: a BUY's stop below, target above; a SELL reversed."""
    entry = entry_price(idea.side, inputs.quote, inputs.spec)
    if level is None or level <= 0:
        return RuleResult(False, missing)
    kind: LevelKind = "stop_loss" if name == "stop loss" else "take_profit"
    where = wrong_side(idea.side, kind, level, entry)
    if where is not None:
        return RuleResult(False, f"{idea.side} {name} {level} must be {where} the entry {entry}")
    return RuleResult(True, f"{name} {level} is on the right side of the entry {entry}")


def rule_stop_loss(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    return _level_side(
        idea, inputs, "stop loss", idea.stop_loss, "a stop loss is required / se requiere stop loss"
    )


def rule_take_profit(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    return _level_side(
        idea, inputs, "take profit", idea.take_profit, "a take profit is required to state the R:R"
    )


def rule_confidence(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    signal = inputs.signal
    if signal is None:
        return RuleResult(
            False, "wait: no current signal for this symbol, cannot confirm the setup", wait=True
        )
    pct, min_pct = round(signal.confidence * 100), round(limits.min_confidence * 100)
    if signal.confidence < limits.min_confidence:
        return RuleResult(False, f"wait: signal confidence {pct}% is below the minimum {min_pct}%", wait=True)
    return RuleResult(True, f"signal confidence {pct}% ≥ {min_pct}%")


def rule_signal_direction(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    """A BUY against a SHORT signal or a SELL against a LONG one is blocked; HOLD is left to confidence."""
    signal = inputs.signal
    if signal is None or signal.action == "HOLD" or not limits.block_against_signal:
        return RuleResult(True, f"no signal direction against a {idea.side}")
    against = {"LONG": "SELL", "SHORT": "BUY"}[signal.action]
    if idea.side == against:
        pct = round(signal.confidence * 100)
        return RuleResult(False, f"the signal says {signal.action} ({pct}%): a {idea.side} goes against it")
    return RuleResult(True, f"the signal says {signal.action}, in the direction of the {idea.side}")


def rule_amd_phase(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    phase = (inputs.signal.amd_phase if inputs.signal else "unknown").lower()
    if phase in {p.lower() for p in limits.blocked_amd_phases}:
        return RuleResult(False, f"AMD phase is '{phase}': no trade in this phase")
    return RuleResult(True, f"AMD phase '{phase}' allows trading")


def rule_daily_loss(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    p = inputs.portfolio
    limit_usd = round(p.balance * limits.daily_loss_limit_pct / 100, 2)
    return judged(
        p.daily_pnl > -limit_usd,
        f"daily P&L {p.daily_pnl:.2f} USD within the -{limit_usd:.2f} USD limit",
        f"daily loss limit reached: P&L {p.daily_pnl:.2f} USD ≤ -{limit_usd:.2f} USD "
        f"({limits.daily_loss_limit_pct}% of balance)",
    )


def rule_open_positions(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    count, most = len(inputs.portfolio.positions), limits.max_open_positions
    return judged(
        count < most,
        f"{count} of {most} positions open",
        f"{count} positions open: max open positions is {most}",
    )


def rule_market_open(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> RuleResult:
    """No fills at a stale price: weekends, daily breaks and data gaps leave the last price hours old."""
    age = (inputs.now - inputs.quote.time).total_seconds()
    if age > limits.max_quote_age_seconds:
        return RuleResult(
            False,
            f"market closed: the last {idea.symbol} price is from {inputs.quote.time:%Y-%m-%d %H:%M} UTC, "
            f"{age / 60:.0f} min ago (limit {limits.max_quote_age_seconds // 60} min)",
        )
    return RuleResult(True, f"live price ({age:.0f} s old)")


PRE_RULES: list[Callable[[TradeIdea, RiskInputs, RiskSettings], RuleResult]] = [
    rule_symbol_allowed,
    rule_market_open,
    rule_stop_loss,
    rule_take_profit,
    rule_confidence,
    rule_signal_direction,
    rule_amd_phase,
    rule_daily_loss,
    rule_open_positions,
]

# --- rules on the sized trade ----------------------------------------------------------------------------


def rule_lot_bounds(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized) -> RuleResult:
    spec, lots = inputs.spec, sized.size_lots
    problem = lot_problem(spec, lots)
    if problem == "bounds":
        return RuleResult(False, f"size {lots} lots is outside {spec.min_lot}-{spec.max_lot} lots")
    if problem == "step":
        return RuleResult(False, f"size {lots} lots is not a multiple of the {spec.lot_step} lot step")
    return RuleResult(True, f"size {lots} lots within bounds and step")


def rule_risk_per_trade(
    idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized
) -> RuleResult:
    pct = limits.max_risk_per_trade_pct
    if sized.size_lots <= 0:
        return RuleResult(
            False,
            f"even the minimum {inputs.spec.min_lot} lots risks more than the {pct}% cap "
            f"({sized.max_risk_usd:.2f} USD) with this stop loss",
        )
    return judged(
        sized.risk_usd <= sized.max_risk_usd + CENT / 2,
        f"risk {sized.risk_usd:.2f} USD ≤ {pct}% of equity ({sized.max_risk_usd:.2f} USD)",
        f"risk {sized.risk_usd:.2f} USD exceeds the max risk per trade of {pct}% of equity "
        f"({sized.max_risk_usd:.2f} USD); reduce the size",
    )


def rule_risk_reward(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized) -> RuleResult:
    rr = _risk_reward(idea, sized.entry)
    if rr is None or rr < limits.min_risk_reward:
        shown = "n/a" if rr is None else f"{rr:.2f}"
        return RuleResult(False, f"R:R {shown} is below the minimum {limits.min_risk_reward}")
    return RuleResult(True, f"R:R {rr:.2f} ≥ {limits.min_risk_reward}")


def rule_lots_per_symbol(
    idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized
) -> RuleResult:
    existing = sum(p.size for p in inputs.portfolio.positions if p.symbol.upper() == idea.symbol.upper())
    total = round(existing + sized.size_lots, 8)
    return judged(
        total <= limits.max_lots_per_symbol + 1e-9,
        f"{idea.symbol} exposure {total} ≤ {limits.max_lots_per_symbol} lots",
        f"{idea.symbol} exposure {total} lots (open {round(existing, 8)} + new {sized.size_lots}) "
        f"exceeds the max {limits.max_lots_per_symbol} lots per symbol",
    )


def rule_daily_loss_headroom(
    idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized
) -> RuleResult:
    """A trade whose stop would push today's P&L past the daily limit is blocked before it is placed."""
    p = inputs.portfolio
    limit_usd = round(p.balance * limits.daily_loss_limit_pct / 100, 2)
    after_usd = round(p.daily_pnl - sized.risk_usd, 2)
    return judged(
        after_usd >= -limit_usd - CENT / 2,
        f"a loss at the stop leaves today's P&L at {after_usd:.2f} USD ≥ -{limit_usd:.2f}",
        f"this trade risks {sized.risk_usd:.2f} USD; a loss would take today's P&L to "
        f"{after_usd:.2f} USD, past the -{limit_usd:.2f} USD daily limit",
    )


def rule_free_margin(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings, sized: _Sized) -> RuleResult:
    """Blocked here rather than refused by the broker after the trader approved it."""
    if inputs.leverage is None:
        return RuleResult(True, "margin not checked here (leverage unknown); the broker checks it")
    needed = margin_usd(inputs.spec, sized.size_lots, sized.entry, inputs.leverage)
    free = inputs.portfolio.free_margin
    return judged(
        needed <= free,
        f"margin {needed:.2f} USD ≤ free margin {free:.2f} USD",
        f"needs {needed:.2f} USD of margin; free margin is {free:.2f} USD",
    )


SIZED_RULES: list[Callable[[TradeIdea, RiskInputs, RiskSettings, _Sized], RuleResult]] = [
    rule_risk_per_trade,
    rule_daily_loss_headroom,
    rule_lot_bounds,
    rule_risk_reward,
    rule_lots_per_symbol,
    rule_free_margin,
]


def _risk_reward(idea: TradeIdea, entry: float) -> float | None:
    if idea.stop_loss is None or idea.take_profit is None:
        return None
    risk = abs(entry - idea.stop_loss)
    return round(abs(idea.take_profit - entry) / risk, 2) if risk > 0 else None


def _size(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> _Sized:
    spec, entry = inputs.spec, entry_price(idea.side, inputs.quote, inputs.spec)
    cap_usd = max_risk_usd(inputs.portfolio, limits)
    assert idea.stop_loss is not None  # sizing runs only after rule_stop_loss passed
    lots = (
        idea.size_lots if idea.size_lots is not None else size_for_risk(spec, entry, idea.stop_loss, cap_usd)
    )
    risk_usd = move_usd(spec, entry, idea.stop_loss, lots)  # realised at the stop price
    tp = idea.take_profit
    reward_usd = move_usd(spec, entry, tp, lots) if tp is not None else 0.0  # realised at the TP price
    return _Sized(entry, round(lots, 8), risk_usd, cap_usd, reward_usd)


def verdict_of(
    checks: list[RuleResult],
    *,
    size_lots: float,
    entry_price: float,
    risk_usd: float,
    equity: float,
    reward_usd: float = 0.0,
    risk_reward: float | None = None,
    stop_pips: float | None = None,
    take_profit_pips: float | None = None,
) -> Verdict:
    """The verdict on `checks`: passed only if all passed; a wait when every block is a wait."""
    blocking = [c for c in checks if not c.passed]
    return Verdict(
        passed=not blocking,
        reasons=[c.reason for c in blocking] or [c.reason for c in checks],
        size_lots=size_lots,
        entry_price=entry_price,
        risk_usd=risk_usd,
        risk_pct=round(risk_usd / equity * 100, 2) if equity > 0 else 0.0,
        reward_usd=reward_usd,
        risk_reward=risk_reward,
        stop_pips=stop_pips,
        take_profit_pips=take_profit_pips,
        checks=checks,
        wait=bool(blocking) and all(c.wait for c in blocking),
    )


def evaluate(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> Verdict:
    """Run every rule; the idea passes only if all pass. A too-large size is blocked, never reduced."""
    spec = inputs.spec
    entry = entry_price(idea.side, inputs.quote, spec)
    checks = [rule(idea, inputs, limits) for rule in PRE_RULES]
    stop_ok = checks[PRE_RULES.index(rule_stop_loss)].passed
    sized = _size(idea, inputs, limits) if stop_ok else None
    if sized is not None:
        checks += [rule(idea, inputs, limits, sized) for rule in SIZED_RULES]
    return verdict_of(
        checks,
        size_lots=sized.size_lots if sized else (idea.size_lots or 0.0),
        entry_price=entry,
        risk_usd=sized.risk_usd if sized else 0.0,
        equity=inputs.portfolio.equity,
        reward_usd=sized.reward_usd if sized else 0.0,
        risk_reward=_risk_reward(idea, entry) if stop_ok else None,
        stop_pips=spec.pips(entry - idea.stop_loss) if stop_ok and idea.stop_loss else None,
        take_profit_pips=spec.pips(idea.take_profit - entry) if idea.take_profit else None,
    )
