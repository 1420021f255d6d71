"""execute: the only code that reaches the broker; idempotency key = proposal id; re-checks price drift."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.nodes.load_context import Node, invalidate_portfolio, thread_id
from graph.state import State
from tools.schemas import OrderRequest, OrderResult


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
            proposal.get("stop_loss"),
            proposal.get("take_profit"),
            key,
            ctx.account_id,
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


def make_execute(deps: Deps) -> Node:
    async def execute(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        proposal = state.get("proposal") or {}
        call = state.get("pending_call") or {"id": "none", "name": "execute_trade"}
        decision = state.get("decision") or {}
        if decision.get("decision") != "approve" or not proposal.get("proposal_id"):
            # Routing only sends approvals here; this guard keeps the broker unreachable if that ever changes.
            refused = {"status": "refused", "proposal_id": proposal.get("proposal_id")}
            await deps.audit.append("execution_refused", ctx.user_id, thread_id(), refused)
            message = ToolMessage(
                "NOT EXECUTED: no approval of this proposal was recorded.",
                tool_call_id=call["id"],
                name=call["name"],
                status="error",
            )
            return {"messages": [message], "outcome": refused, "proposal": None, "pending_call": None}
        if proposal.get("kind") == "open":
            quote = await deps.services.market.get_quote(proposal["symbol"])
            price = quote.ask if proposal["side"] == "BUY" else quote.bid
            drift = drift_pct(proposal, price)
            if drift > deps.settings.risk.max_price_drift_pct:
                outcome = {
                    "status": "drift",
                    "proposal_id": proposal["proposal_id"],
                    "price": price,
                    "drift_pct": round(drift, 4),
                }
                await deps.audit.append("drift", ctx.user_id, thread_id(), outcome)
                # Back through the gate with the new price; the trader approves the new proposal again.
                return {"outcome": outcome, "proposal": None}
        try:
            result = await send(deps, ctx, proposal)
        except Exception as exc:  # the same key may be retried safely: the broker places it at most once
            unknown = (
                f"the broker did not confirm the order ({exc}); its outcome is unknown. Check /portfolio: "
                "the order carries idempotency key = proposal id, so it can never be placed twice."
            )
            result = OrderResult(success=False, message=unknown, idempotency_key=proposal.get("proposal_id"))
        await invalidate_portfolio(deps, ctx.account_id)
        outcome = {
            "status": "executed" if result.success else "failed",
            **result.model_dump(mode="json"),
            "proposal_id": proposal.get("proposal_id"),
            "kind": proposal.get("kind"),
        }
        await deps.audit.append("execution", ctx.user_id, thread_id(), outcome)
        head = "EXECUTED" if result.success else "ORDER FAILED"
        message = ToolMessage(
            # First line for the trader (slash turns show it as is), the details for the model.
            f"{head}: {result.message}\n{json.dumps(outcome, default=str)}",
            tool_call_id=call["id"],
            name=call["name"],
            status="success" if result.success else "error",
        )
        return {"messages": [message], "outcome": outcome, "proposal": None, "pending_call": None}

    return execute
