"""risk_gate: turn the proposal tool call into a priced proposal and run the deterministic risk rules."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.messages import open_tool_calls
from graph.nodes.load_context import Node, thread_id
from graph.position_rules import Modify, check_modify, risk_at_stop
from graph.risk import RiskInputs, RuleResult, TradeIdea, Verdict, evaluate
from graph.schemas import Proposal
from graph.state import PendingCall, State
from tools.schemas import Portfolio, Position, Signal, SymbolSpec
from tools.trading_tools import PROPOSAL_TOOLS

KINDS = {"execute_trade": "open", "close_position": "close", "modify_position": "modify"}


class Blocked(Exception):
    """The proposal cannot even be priced (bad arguments, unknown symbol or ticket)."""


def _num(args: dict[str, Any], key: str) -> float | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Blocked(f"{key} must be a number (got {value!r})") from None
    # NaN fails every comparison, so no rule would ever block it; inf makes the money arithmetic NaN.
    if not float("-inf") < number < float("inf"):
        raise Blocked(f"{key} must be a finite number (got {value!r})")
    return number


def trade_idea(args: dict[str, Any]) -> TradeIdea:
    side = str(args.get("action") or args.get("side") or "").upper()
    if side not in ("BUY", "SELL"):
        raise Blocked(f"action must be BUY or SELL (got {args.get('action')!r})")
    size = _num(args, "size")
    return TradeIdea(
        symbol=str(args.get("symbol") or "").upper(),
        side=side,  # type: ignore[arg-type]
        size_lots=size,
        stop_loss=_num(args, "stop_loss"),
        take_profit=_num(args, "take_profit"),
    )


def first_call(state: State) -> tuple[PendingCall | None, list[ToolMessage]]:
    """The proposal call to gate; any further proposal calls of the same message are declined."""
    pending = state.get("pending_call")
    if pending:
        return pending, []
    calls = [c for c in open_tool_calls(state.get("messages", [])) if c["name"] in PROPOSAL_TOOLS]
    if not calls:
        return None, []
    extra = [
        ToolMessage(
            "Not proposed: one trade proposal at a time. Propose it again after the trader decides.",
            tool_call_id=c["id"],
            name=c["name"],
            status="error",
        )
        for c in calls[1:]
    ]
    first = calls[0]
    return PendingCall(id=first["id"], name=first["name"], args=dict(first.get("args") or {})), extra


async def _signal(deps: Deps, symbol: str) -> Signal | None:
    # Always the configured timeframe: the model picks get_ml_signal's timeframe, and letting that
    # choice reach the gate would let a prompt injection shop for the timeframe with the best confidence.
    timeframe = deps.settings.risk.signal_timeframe
    try:
        return await deps.services.signals.get_signal(symbol, timeframe)
    except Exception:  # no signal -> the confidence rule blocks with "wait"
        return None


def _spec(deps: Deps, symbol: str) -> SymbolSpec:
    spec = deps.services.specs.get(symbol)
    if spec is None:
        raise Blocked(
            f"{symbol or 'that symbol'} is not traded here (known: {', '.join(sorted(deps.services.specs))})"
        )
    return spec


async def gate_open(deps: Deps, ctx: Context, call: PendingCall) -> tuple[Verdict, dict[str, Any]]:
    idea = trade_idea(call["args"])
    spec = _spec(deps, idea.symbol)
    quote = await deps.services.market.get_quote(idea.symbol)
    portfolio = await deps.services.broker.get_portfolio(ctx.account_id)
    signal = await _signal(deps, idea.symbol)
    now, leverage = deps.services.clock.now(), deps.settings.broker.leverage
    inputs = RiskInputs(spec, quote, portfolio, signal, now, leverage)
    verdict = evaluate(idea, inputs, deps.settings.risk)
    fields = {
        "kind": "open",
        "symbol": idea.symbol,
        "side": idea.side,
        "size_lots": verdict.size_lots,
        "entry_price": verdict.entry_price,
        "stop_loss": idea.stop_loss,
        "take_profit": idea.take_profit,
        "stop_pips": verdict.stop_pips,
        "take_profit_pips": verdict.take_profit_pips,
        "risk_usd": verdict.risk_usd,
        "risk_pct": verdict.risk_pct,
        "reward_usd": verdict.reward_usd,
        "risk_reward": verdict.risk_reward,
        "signal_reasoning": list(signal.reasoning) if signal else [],
    }
    return verdict, fields


def _find(portfolio: Portfolio, ticket: Any) -> Position:
    for position in portfolio.positions:
        if str(position.ticket) == str(ticket):
            return position
    tickets = ", ".join(str(p.ticket) for p in portfolio.positions) or "none"
    raise Blocked(f"no open position with ticket {ticket} (open tickets: {tickets})")


async def gate_position(
    deps: Deps, ctx: Context, call: PendingCall, kind: str
) -> tuple[Verdict, dict[str, Any]]:
    """Close and modify proposals: the ticket must be open; a modify passes graph.position_rules."""
    portfolio = await deps.services.broker.get_portfolio(ctx.account_id)
    position = _find(portfolio, call["args"].get("ticket"))
    spec = _spec(deps, position.symbol)
    quote = await deps.services.market.get_quote(position.symbol)
    # A long position exits at the bid, a short one at the ask.
    price = spec.round_price(quote.bid if position.type == "BUY" else quote.ask)
    change = Modify(position, price, None, None)
    if kind == "modify":
        change = Modify(position, price, _num(call["args"], "stop_loss"), _num(call["args"], "take_profit"))
        checks = check_modify(change, spec, portfolio, deps.settings.risk)
    else:
        checks = [
            RuleResult(
                True,
                f"position #{position.ticket} is open ({position.type} {position.size} "
                f"{position.symbol}); closing it reduces risk",
            )
        ]
    failed = [c.reason for c in checks if not c.passed]
    sl = change.effective_stop
    tp = change.take_profit if change.take_profit is not None else position.take_profit
    risk_usd = risk_at_stop(change, sl, spec) or 0.0
    verdict = Verdict(
        passed=not failed,
        reasons=failed or [c.reason for c in checks],
        size_lots=position.size,
        entry_price=price,
        risk_usd=round(risk_usd, 2),
        risk_pct=round(risk_usd / portfolio.equity * 100, 2) if portfolio.equity > 0 else 0.0,
        reward_usd=0.0,
        risk_reward=None,
        stop_pips=spec.pips(price - sl) if sl else None,
        take_profit_pips=spec.pips(tp - price) if tp else None,
    )
    fields = {
        "kind": kind,
        "symbol": position.symbol,
        "side": position.type,
        "size_lots": position.size,
        "entry_price": price,
        # What the broker is asked to set: None keeps the current level.
        "stop_loss": change.stop_loss if kind == "modify" else position.stop_loss,
        "take_profit": change.take_profit if kind == "modify" else position.take_profit,
        "stop_pips": verdict.stop_pips,
        "take_profit_pips": verdict.take_profit_pips,
        "risk_usd": verdict.risk_usd,
        "risk_pct": verdict.risk_pct,
        "ticket": position.ticket,
    }
    return verdict, fields


def blocked_text(reasons: list[str]) -> str:
    return "BLOCKED by the risk rules, nothing was executed:\n" + "\n".join(f"- {r}" for r in reasons)


def make_risk_gate(deps: Deps) -> Node:
    async def risk_gate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        call, extra = first_call(state)
        if call is None:  # routing only sends proposal calls here; nothing to gate
            return {"pending_call": None, "proposal": None}
        kind = KINDS.get(call["name"], "open")
        write = get_stream_writer()
        write({"event": "tool", "data": {"name": call["name"], "args": call["args"]}})
        try:
            if kind == "open":
                verdict, fields = await gate_open(deps, ctx, call)
            else:
                verdict, fields = await gate_position(deps, ctx, call, kind)
            reasons, passed = verdict.reasons, verdict.passed
        except Blocked as exc:
            reasons, passed, fields = [str(exc)], False, {}
        except Exception as exc:  # a service failure blocks: no price, no trade
            reasons, passed, fields = [f"could not price the proposal: {exc}"], False, {}
        verdict_dict = {"passed": passed, "reasons": reasons}
        write({"event": "tool_result", "data": {"name": call["name"], "ok": passed}})
        audit = {"call": dict(call), "verdict": verdict_dict, **fields}
        await deps.audit.append("verdict", ctx.user_id, thread_id(), audit)
        tools_used = [*state.get("tools_used", []), call["name"]]
        if not passed:
            message = ToolMessage(
                blocked_text(reasons), tool_call_id=call["id"], name=call["name"], status="error"
            )
            # A blocked proposal counts as a tool round, so a model insisting on it cannot loop forever.
            return {
                "messages": [*extra, message],
                "verdict": verdict_dict,
                "proposal": None,
                "pending_call": None,
                "tools_used": tools_used,
                "tool_rounds": state.get("tool_rounds", 0) + 1,
            }
        now = deps.now()
        previous = state.get("outcome") or {}
        proposal = Proposal(
            proposal_id=uuid.uuid4().hex,
            verdict=verdict_dict,
            requote_of=previous.get("proposal_id") if previous.get("status") == "requote" else None,
            created_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=deps.settings.risk.proposal_ttl_seconds)).isoformat(),
            **fields,
        ).model_dump()
        await deps.audit.append("proposal", ctx.user_id, thread_id(), proposal)
        return {
            "messages": extra,
            "verdict": verdict_dict,
            "proposal": proposal,
            "pending_call": call,
            "tools_used": tools_used,
        }

    return risk_gate
