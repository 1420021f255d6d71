"""Pricing: a proposal's terms, with the market and the account as they are now, become a risk Verdict and
the typed Proposal the trader approves. `price_trade` and `price_position` read the quote, the account and
the signal from the services themselves (never from the model); the rules are graph.risk.rules (new trades)
and graph.risk.positions (closing and modifying a position). No graph framework here: the risk gate and
execute's re-check both call it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from config.settings import RiskSettings
from graph.approval import Proposal, ProposalKind, ProposalTerms, Side
from graph.risk.positions import Modify, check_modify, risk_at_stop
from graph.risk.rules import RiskInputs, RuleResult, TradeIdea, Verdict, evaluate, verdict_of
from tools.broker.pricing import mark_price
from tools.schemas import Portfolio, Position, Quote, Signal, SymbolSpec
from tools.services import Services


class Blocked(Exception):
    """The proposal cannot even be priced (bad arguments, unknown symbol or ticket)."""


@dataclass(frozen=True)
class Priced:
    """A proposal's terms and the risk verdict on them; `proposal()` when it passed."""

    verdict: Verdict
    kind: ProposalKind
    symbol: str
    side: Side
    # What the broker is asked to set (a modify: None keeps the position's level).
    stop_loss: float | None
    take_profit: float | None
    ticket: int | None = None
    signal_reasoning: tuple[str, ...] = ()
    # A new trade: the risk it was sized with (the trader's preference) and the configured cap.
    risk_limit_pct: float | None = None
    risk_cap_pct: float | None = None

    def terms(self) -> ProposalTerms:
        v = self.verdict
        terms = ProposalTerms(
            kind=self.kind,
            symbol=self.symbol,
            side=self.side,
            size_lots=v.size_lots,
            entry_price=v.entry_price,
            stop_loss=self.stop_loss,
            take_profit=self.take_profit,
            stop_pips=v.stop_pips,
            take_profit_pips=v.take_profit_pips,
            risk_usd=v.risk_usd,
            risk_pct=v.risk_pct,
            reward_usd=v.reward_usd,
            risk_reward=v.risk_reward,
            signal_reasoning=list(self.signal_reasoning),
            ticket=self.ticket,
        )
        if self.risk_limit_pct is not None and self.risk_cap_pct is not None:
            terms["risk_limit_pct"], terms["risk_cap_pct"] = self.risk_limit_pct, self.risk_cap_pct
        return terms

    def proposal(
        self, proposal_id: str, now: datetime, ttl_seconds: float, requote_of: str | None = None
    ) -> Proposal:
        return Proposal(
            **self.terms(),
            proposal_id=proposal_id,
            verdict=self.verdict.summary(),
            created_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=ttl_seconds)).isoformat(),
            requote_of=requote_of,
            attempts=0,
            notice=None,
        )


def price_open(idea: TradeIdea, inputs: RiskInputs, limits: RiskSettings) -> Priced:
    """A new trade: every risk rule of graph.risk.rules, sized to the risk cap when no size is given."""
    signal = inputs.signal
    return Priced(
        verdict=evaluate(idea, inputs, limits),
        kind="open",
        symbol=idea.symbol,
        side=idea.side,
        stop_loss=idea.stop_loss,
        take_profit=idea.take_profit,
        signal_reasoning=tuple(signal.reasoning) if signal else (),
    )


def find_position(portfolio: Portfolio, ticket: object) -> Position:
    for position in portfolio.positions:
        if str(position.ticket) == str(ticket):
            return position
    tickets = ", ".join(str(p.ticket) for p in portfolio.positions) or "none"
    raise Blocked(f"no open position with ticket {ticket} (open tickets: {tickets})")


def exit_price(position: Position, quote: Quote, spec: SymbolSpec) -> float:
    """A long position exits at the bid, a short one at the ask (the broker's mark price)."""
    return mark_price(spec, position.type, quote)


def price_close(position: Position, spec: SymbolSpec, quote: Quote, portfolio: Portfolio) -> Priced:
    """Closing only ever reduces risk: no rule beyond the ticket being open."""
    change = Modify(position, exit_price(position, quote, spec), None, None)
    reason = (
        f"position #{position.ticket} is open ({position.type} {position.size} {position.symbol}); "
        "closing it reduces risk"
    )
    return _position_priced("close", change, [RuleResult(True, reason)], spec, portfolio)


def price_modify(change: Modify, spec: SymbolSpec, portfolio: Portfolio, limits: RiskSettings) -> Priced:
    """New SL and/or TP for an open position, checked by graph.risk.positions."""
    checks = check_modify(change, spec, portfolio, limits)
    return _position_priced("modify", change, checks, spec, portfolio)


def _position_priced(
    kind: ProposalKind, change: Modify, checks: list[RuleResult], spec: SymbolSpec, portfolio: Portfolio
) -> Priced:
    position, price = change.position, change.exit_price
    sl = change.effective_stop
    tp = change.take_profit if change.take_profit is not None else position.take_profit
    verdict = verdict_of(
        checks,
        size_lots=position.size,
        entry_price=price,
        risk_usd=round(risk_at_stop(change, sl, spec) or 0.0, 2),
        equity=portfolio.equity,
        stop_pips=spec.pips(price - sl) if sl else None,
        take_profit_pips=spec.pips(tp - price) if tp else None,
    )
    modify = kind == "modify"
    return Priced(
        verdict=verdict,
        kind=kind,
        symbol=position.symbol,
        side=position.type,
        stop_loss=change.stop_loss if modify else position.stop_loss,
        take_profit=change.take_profit if modify else position.take_profit,
        ticket=position.ticket,
    )


def _spec(services: Services, symbol: str) -> SymbolSpec:
    spec = services.specs.get(symbol)
    if spec is None:
        raise Blocked(
            f"{symbol or 'that symbol'} is not traded here (known: {', '.join(sorted(services.specs))})"
        )
    return spec


async def _signal(services: Services, symbol: str) -> Signal | None:
    # Always the configured timeframe: the model picks get_ml_signal's timeframe, and letting that
    # choice reach the gate would let a prompt injection shop for the timeframe with the best confidence.
    try:
        return await services.signals.get_signal(symbol, services.settings.risk.signal_timeframe)
    except Exception:  # no signal -> the confidence rule blocks with "wait"
        return None


def trader_limits(limits: RiskSettings, risk_pct: float | None) -> RiskSettings:
    """The limits with the trader's risk per trade (tools.preferences): it can tighten the cap, never loosen
    it (a value above the cap, or none, leaves the cap)."""
    if risk_pct is None or not risk_pct > 0 or risk_pct >= limits.max_risk_per_trade_pct:
        return limits
    return limits.model_copy(update={"max_risk_per_trade_pct": risk_pct})


async def price_trade(
    services: Services, account_id: str, idea: TradeIdea, risk_pct: float | None = None
) -> Priced:
    """A new trade priced on the live quote, the account and the current signal; sized to (and checked
    against) the trader's `risk_pct` of equity when it is below the cap (`trader_limits`)."""
    spec = _spec(services, idea.symbol)
    quote = await services.market.get_quote(idea.symbol)
    portfolio = await services.broker.get_portfolio(account_id)
    signal = await _signal(services, idea.symbol)
    settings = services.settings
    inputs = RiskInputs(spec, quote, portfolio, signal, services.clock.now(), settings.broker.leverage)
    limits = trader_limits(settings.risk, risk_pct)
    priced = price_open(idea, inputs, limits)
    cap = settings.risk.max_risk_per_trade_pct
    return replace(priced, risk_limit_pct=limits.max_risk_per_trade_pct, risk_cap_pct=cap)


async def price_position(
    services: Services, account_id: str, ticket: int, change: tuple[float | None, float | None] | None
) -> Priced:
    """Closing (`change` None) or modifying (new SL, TP; None keeps a level) an open position by ticket."""
    portfolio = await services.broker.get_portfolio(account_id)
    position = find_position(portfolio, ticket)
    spec = _spec(services, position.symbol)
    quote = await services.market.get_quote(position.symbol)
    if change is None:
        return price_close(position, spec, quote, portfolio)
    modify = Modify(position, exit_price(position, quote, spec), *change)
    return price_modify(modify, spec, portfolio, services.settings.risk)
