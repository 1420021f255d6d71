"""Risk rules for changing an open position (modify SL/TP); plain Python, one rule per function.

Closing a position only ever reduces risk, so it has no rules beyond the ticket being open. A modify may
move a stop further away: the money then at risk (current exit price to the new stop) must stay within
the per-trade limit, unless the change reduces the risk the position already carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import RiskSettings
from graph.risk.rules import RuleResult, judged, max_risk_usd, move_usd
from tools.broker.pricing import LevelKind, wrong_side
from tools.schemas import Portfolio, Position, SymbolSpec


@dataclass(frozen=True)
class Modify:
    position: Position
    exit_price: float  # where the position would close now: bid for a BUY, ask for a SELL
    stop_loss: float | None  # None = unchanged
    take_profit: float | None  # None = unchanged

    @property
    def effective_stop(self) -> float | None:
        return self.stop_loss if self.stop_loss is not None else self.position.stop_loss


def risk_at_stop(change: Modify, stop: float | None, spec: SymbolSpec) -> float | None:
    """USD lost if price goes from the exit price to `stop` (converted at the stop, where the loss is
    realised); None = unbounded (no stop)."""
    if stop is None:
        return None
    return move_usd(spec, change.exit_price, stop, change.position.size)


def rule_something_changes(change: Modify) -> RuleResult:
    if change.stop_loss is None and change.take_profit is None:
        return RuleResult(False, "give a new stop loss and/or take profit")
    return RuleResult(True, "new levels given")


def rule_levels_side(change: Modify) -> RuleResult:
    side, price = change.position.type, change.exit_price
    levels: list[tuple[LevelKind, float | None]] = [
        ("stop_loss", change.stop_loss),
        ("take_profit", change.take_profit),
    ]
    for kind, level in levels:
        where = wrong_side(side, kind, level, price) if level is not None else None
        if where is not None:
            name = kind.replace("_", " ")
            return RuleResult(False, f"{name} {level} must be {where} the price {price}")
    return RuleResult(True, "new levels are on the right side of the price")


def rule_modify_risk(
    change: Modify, spec: SymbolSpec, portfolio: Portfolio, limits: RiskSettings
) -> RuleResult:
    if change.stop_loss is None:
        return RuleResult(True, "stop loss unchanged")
    new_risk = risk_at_stop(change, change.stop_loss, spec) or 0.0
    old_risk = risk_at_stop(change, change.position.stop_loss, spec)
    cap = max_risk_usd(portfolio, limits)
    if old_risk is not None and new_risk <= old_risk:
        return RuleResult(True, f"the new stop reduces the risk to {new_risk:.2f} USD")
    return judged(
        new_risk <= cap,
        f"{new_risk:.2f} USD at risk, within the {cap:.2f} USD limit",
        f"the new stop puts {new_risk:.2f} USD at risk, above the {limits.max_risk_per_trade_pct}% "
        f"limit ({cap:.2f} USD)",
    )


def check_modify(
    change: Modify, spec: SymbolSpec, portfolio: Portfolio, limits: RiskSettings
) -> list[RuleResult]:
    return [
        rule_something_changes(change),
        rule_levels_side(change),
        rule_modify_risk(change, spec, portfolio, limits),
    ]
