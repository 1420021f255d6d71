"""execute: the only code that reaches the broker; idempotency key = proposal id.

Before sending a new trade it takes the account's lock and checks the proposal again against the
account as it is now: another session of the same trader may have traded since the proposal was
priced, or the price may have moved. Either way the proposal goes back through the gate (the trader
approves the re-quote), so limits hold at the moment the order is sent, not only when it was proposed.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.nodes.load_context import Node, invalidate_portfolio, thread_id
from graph.nodes.risk_gate import gate_open
from graph.state import PendingCall, State
from tools.locks import RunLocks, SessionBusy
from tools.schemas import OrderRequest, OrderResult

# Orders of one account are sent one at a time (across sessions and server processes): a short lease,
# renewed while the order is on its way, waited for at most ACCOUNT_WAIT_SECONDS.
ACCOUNT_LEASE_SECONDS = 6
ACCOUNT_WAIT_SECONDS = 30


def drift_pct(proposal: dict[str, Any], price: float) -> float:
    entry = float(proposal["entry_price"])
    return abs(price - entry) / entry * 100 if entry else 0.0


async def send(deps: Deps, ctx: Context, proposal: dict[str, Any]) -> OrderResult:
    broker, key = deps.services.broker, proposal["proposal_id"]
    if proposal["kind"] == "close":
        return await broker.close_position(int(proposal["ticket"]), key, ctx.account_id)
    if proposal["kind"] == "modify":
        return await broker.modify_position(
            int(proposal["ticket"]),
            stop_loss=proposal.get("stop_loss"),
            take_profit=proposal.get("take_profit"),
            idempotency_key=key,
            account_id=ctx.account_id,
        )
    order = OrderRequest(
        symbol=proposal["symbol"],
        action=proposal["side"],
        size=proposal["size_lots"],
        stop_loss=proposal["stop_loss"],
        take_profit=proposal.get("take_profit"),
        account_id=ctx.account_id,
    )
    return await broker.place_order(order, idempotency_key=key)


async def still_valid(
    deps: Deps, ctx: Context, state: State, proposal: dict[str, Any]
) -> dict[str, Any] | None:
    """None when the approved trade may go now; else why it must be re-quoted (price drift or limits)."""
    quote = await deps.services.market.get_quote(proposal["symbol"])
    price = quote.ask if proposal["side"] == "BUY" else quote.bid
    drift = drift_pct(proposal, price)
    requote = {"status": "requote", "proposal_id": proposal["proposal_id"], "price": price}
    if drift > deps.settings.risk.max_price_drift_pct:
        return {**requote, "drift_pct": round(drift, 4), "reasons": [f"price moved {drift:.3f}% to {price}"]}
    call = state.get("pending_call") or PendingCall(id="none", name="execute_trade", args={})
    # The approved size, not a re-derived one: the trader approved exactly this order.
    fixed = PendingCall(
        id=call["id"], name=call["name"], args={**call["args"], "size": proposal["size_lots"]}
    )
    verdict, _ = await gate_open(deps, ctx, fixed)
    return None if verdict.passed else {**requote, "reasons": verdict.reasons}


def tool_message(call: dict[str, Any], text: str, ok: bool) -> ToolMessage:
    return ToolMessage(text, tool_call_id=call["id"], name=call["name"], status="success" if ok else "error")


def make_execute(deps: Deps) -> Node:
    locks = RunLocks(
        deps.services.redis,
        f"{deps.prefix}account:",
        ACCOUNT_LEASE_SECONDS,
        wait=True,
        wait_seconds=ACCOUNT_WAIT_SECONDS,
    )

    async def execute(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        proposal = state.get("proposal") or {}
        call: dict[str, Any] = dict(state.get("pending_call") or {"id": "none", "name": "execute_trade"})
        decision = state.get("decision") or {}
        approved = decision.get("decision") == "approve" and decision.get("proposal_id") is not None
        if not approved or decision.get("proposal_id") != proposal.get("proposal_id"):
            # Routing only sends approvals here; this guard keeps the broker unreachable if that ever changes.
            refused = {"status": "refused", "proposal_id": proposal.get("proposal_id")}
            await deps.audit.append("execution_refused", ctx.user_id, thread_id(), refused)
            message = tool_message(call, "NOT EXECUTED: no approval of this proposal was recorded.", False)
            return {"messages": [message], "outcome": refused, "proposal": None, "pending_call": None}
        try:
            async with locks.hold("broker", ctx.account_id):
                sent = await place(ctx, state, proposal)
        except SessionBusy:  # another order of this account held it for ACCOUNT_WAIT_SECONDS: nothing sent
            return await account_busy(ctx, proposal)
        if isinstance(sent, dict):  # re-quote or unknown outcome: the update to apply
            return sent
        result = sent
        await invalidate_portfolio(deps, ctx.account_id)
        outcome = {
            "status": "executed" if result.success else "failed",
            **result.model_dump(mode="json"),
            "proposal_id": proposal.get("proposal_id"),
            "kind": proposal.get("kind"),
        }
        await deps.audit.append("execution", ctx.user_id, thread_id(), outcome)
        head = "EXECUTED" if result.success else "ORDER FAILED"
        # First line for the trader (slash turns show it as is), the details for the model.
        text = f"{head}: {result.message}\n{json.dumps(outcome, default=str)}"
        message = tool_message(call, text, result.success)
        return {"messages": [message], "outcome": outcome, "proposal": None, "pending_call": None}

    async def place(ctx: Context, state: State, proposal: dict[str, Any]) -> OrderResult | dict[str, Any]:
        """Under the account's lease: the broker's result, or the state update when nothing was placed."""
        try:
            # Ask first: a crash (or a lost reply) after an earlier send must not become a second order
            # or a re-quote of an order that exists. None means the broker has no record of this key.
            found = await deps.services.broker.find_order(proposal["proposal_id"], ctx.account_id)
        except Exception as exc:
            return await unknown_outcome(ctx, proposal, exc)
        if found is not None:
            return found.model_copy(update={"duplicate": True})
        if proposal.get("kind") == "open" and not proposal.get("attempts"):
            requote = await still_valid(deps, ctx, state, proposal)
            if requote is not None:
                await deps.audit.append("requote", ctx.user_id, thread_id(), requote)
                return {"outcome": requote, "proposal": None}
        try:
            return await send(deps, ctx, proposal)
        except Exception as exc:  # outcome unknown: keep the proposal, so a retry reuses its key
            return await unknown_outcome(ctx, proposal, exc)

    async def account_busy(ctx: Context, proposal: dict[str, Any]) -> dict[str, Any]:
        notice = (
            "Another order of this account was still being sent, so this one was not sent. "
            "Approve it again to send it (it is checked again first)."
        )
        outcome = {"status": "account_busy", "proposal_id": proposal["proposal_id"]}
        await deps.audit.append("account_busy", ctx.user_id, thread_id(), outcome)
        return {"outcome": outcome, "proposal": {**proposal, "notice": notice}}

    async def unknown_outcome(ctx: Context, proposal: dict[str, Any], exc: Exception) -> dict[str, Any]:
        notice = (
            f"The broker did not confirm the order ({exc}). It may or may not have been placed: check "
            "/portfolio. Approving this same proposal again retries with the same idempotency key, so it "
            "cannot be placed twice; reject it to stop."
        )
        attempts = int(proposal.get("attempts") or 0) + 1
        retry = {**proposal, "attempts": attempts, "notice": notice}
        outcome = {"status": "unknown", "proposal_id": proposal["proposal_id"], "error": str(exc)}
        await deps.audit.append("execution_unknown", ctx.user_id, thread_id(), outcome)
        return {"outcome": outcome, "proposal": retry}

    return execute
