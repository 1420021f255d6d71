"""risk_gate: turn the proposal tool call into a priced proposal and run the deterministic risk rules."""

from __future__ import annotations

import uuid

from langchain_core.messages import AnyMessage, ToolMessage
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from graph.answers import ONE_AT_A_TIME, fact_message, render
from graph.approval import Fact, PendingCall, VerdictSummary
from graph.approval_reply import shown_args
from graph.deps import Deps, Node, run_thread_id
from graph.messages import open_tool_calls
from graph.pending import abandoned
from graph.risk.proposals import Blocked, Priced, price_position, price_trade
from graph.state import State
from tools.context import Context, required
from tools.schemas import JsonObject, TradeIdea
from tools.trading_tools import (
    PROPOSAL_TOOLS,
    BadArguments,
    ModifyPositionArgs,
    proposal_args,
)


def first_call(state: State) -> tuple[PendingCall | None, list[AnyMessage]]:
    """The proposal call to gate; any further proposal calls of the same message are declined."""
    pending = state.get("pending_call")
    if pending:
        return pending, []
    calls = [c for c in open_tool_calls(state.get("messages", [])) if c["name"] in PROPOSAL_TOOLS]
    if not calls:
        return None, []
    extra: list[AnyMessage] = [
        ToolMessage(
            ONE_AT_A_TIME,
            tool_call_id=c["id"],
            name=c["name"],
            status="error",
        )
        for c in calls[1:]
    ]
    first = calls[0]
    return PendingCall(id=first["id"] or "", name=first["name"], args=dict(first["args"])), extra


async def judge(deps: Deps, ctx: Context, call: PendingCall) -> tuple[Priced | None, VerdictSummary]:
    """The priced proposal (None when it cannot be priced) and the verdict on it. The arguments are read
    with the very schema the model was given for the tool (`proposal_args`)."""
    try:
        edited = TradeIdea.model_validate(call["trade"]) if "trade" in call else None
        args = edited or proposal_args(deps.services, call["name"], call["args"])
        if isinstance(args, TradeIdea):  # the model's or a slash call (ExecuteTradeArgs), or an edit of one
            priced = await price_trade(deps.services, ctx.account_id, args, ctx.risk_per_trade_pct)
        elif isinstance(args, ModifyPositionArgs):
            change = (args.stop_loss, args.take_profit)
            priced = await price_position(deps.services, ctx.account_id, args.ticket, change)
        else:
            priced = await price_position(deps.services, ctx.account_id, args.ticket, None)
    except (BadArguments, Blocked) as exc:
        return None, VerdictSummary(passed=False, reasons=[str(exc)])
    except Exception as exc:  # a service failure blocks: no price, no trade
        return None, VerdictSummary(passed=False, reasons=[f"could not price the proposal: {exc}"])
    return priced, priced.verdict.summary()


async def supersede(deps: Deps, ctx: Context, state: State) -> Fact | None:
    """A new proposal call while one still waits (it survived a read-only turn, graph.pending): the waiting
    one is abandoned, and the fact saying so; None when nothing was waiting. Its open call was already
    answered (PENDING) at the start of the turn."""
    old = state.get("proposal")
    if old is None or state.get("pending_call") is None:
        return None
    await deps.audit.append("abandoned", ctx.user_id, run_thread_id(), old)
    return await abandoned(deps, ctx, old, "replaced by a new proposal")


def make_risk_gate(deps: Deps) -> Node:
    async def risk_gate(state: State, runtime: Runtime[Context]) -> State:
        ctx = required(runtime.context)
        replaced = await supersede(deps, ctx, state)
        if replaced is not None:  # the new call is gated, not the old proposal's
            state = State(**{**state, "pending_call": None, "proposal": None})
        call, extra = first_call(state)
        if call is None:  # routing only sends proposal calls here; nothing to gate
            return State(pending_call=None, proposal=None)
        write = get_stream_writer()
        write({"event": "tool", "data": {"name": call["name"], "args": shown_args(call)}})
        priced, verdict = await judge(deps, ctx, call)
        write({"event": "tool_result", "data": {"name": call["name"], "ok": verdict["passed"]}})
        terms: JsonObject = dict(priced.terms()) if priced else {}
        audit = {"call": call, "verdict": verdict, **terms}
        await deps.audit.append("verdict", ctx.user_id, run_thread_id(), audit)
        tools_used = [*state.get("tools_used", []), call["name"]]
        if priced is None or not verdict["passed"]:
            wait = priced.verdict.wait if priced else False
            blocked = Fact(kind="blocked", proposal_id=None, reasons=verdict["reasons"], wait=wait)
            message = fact_message(call, [blocked, *([replaced] if replaced else [])])
            # A blocked proposal counts as a tool round, so a model insisting on it cannot loop forever.
            return State(
                messages=[*extra, message],
                verdict=verdict,
                proposal=None,
                pending_call=None,
                tools_used=tools_used,
                tool_rounds=state.get("tool_rounds", 0) + 1,
            )
        previous = state.get("outcome")
        requote_of = previous["proposal_id"] if previous and previous["status"] == "requote" else None
        ttl = deps.settings.risk.proposal_ttl_seconds
        proposal = priced.proposal(uuid.uuid4().hex, deps.now(), ttl, requote_of)
        if replaced:
            proposal["notice"] = "\n".join(n for n in (render(replaced), proposal["notice"]) if n)
        await deps.audit.append("proposal", ctx.user_id, run_thread_id(), proposal)
        return State(
            messages=extra, verdict=verdict, proposal=proposal, pending_call=call, tools_used=tools_used
        )

    return risk_gate
