"""execute: the only code that reaches the broker; idempotency key = proposal id.

Before sending a new trade it takes the account's lock and checks the proposal again against the
account as it is now: another session of the same trader may have traded since the proposal was
priced, or the price may have moved. Either way the proposal goes back through the gate (the trader
approves the re-quote), so limits hold at the moment the order is sent, not only when it was proposed.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.answers import ACCOUNT_BUSY, fact_message, sent_text, unknown_outcome_text
from graph.approval import Fact, Outcome, Proposal
from graph.deps import Deps, Node, run_thread_id
from graph.risk.proposals import price_trade
from graph.state import State
from tools.broker.pricing import entry_price
from tools.context import Context, required
from tools.locks import LeaseHeld, Leases
from tools.schemas import OrderRequest, OrderResult, TradeIdea

# Orders of one account are sent one at a time (across sessions and server processes): a short lease,
# renewed while the order is on its way, waited for at most ACCOUNT_WAIT_SECONDS.
ACCOUNT_LEASE_SECONDS = 6
ACCOUNT_WAIT_SECONDS = 30


def drift_pct(proposal: Proposal, price: float) -> float:
    entry = proposal["entry_price"]
    return abs(price - entry) / entry * 100 if entry else 0.0


async def send(deps: Deps, ctx: Context, proposal: Proposal) -> OrderResult:
    broker, key = deps.services.broker, proposal["proposal_id"]
    kind, ticket = proposal["kind"], proposal["ticket"]
    if kind != "open" and ticket is None:
        raise ValueError(f"a {kind} proposal without a ticket")  # the gate always sets it: never sent
    if kind == "close" and ticket is not None:
        return await broker.close_position(ticket, key, ctx.account_id)
    if kind == "modify" and ticket is not None:
        return await broker.modify_position(
            ticket,
            stop_loss=proposal["stop_loss"],
            take_profit=proposal["take_profit"],
            idempotency_key=key,
            account_id=ctx.account_id,
        )
    # The approved trade, by the proposal's names (TradeIdea's), for this run's account.
    order = OrderRequest.model_validate({**proposal, "account_id": ctx.account_id})
    return await broker.place_order(order, idempotency_key=key)


async def still_valid(deps: Deps, ctx: Context, proposal: Proposal) -> Outcome | None:
    """None when the approved trade may go now; else why it must be re-quoted (price drift or limits)."""
    quote = await deps.services.market.get_quote(proposal["symbol"])
    spec = deps.services.specs[proposal["symbol"]]
    price = entry_price(spec, proposal["side"], quote)  # the gate's entry price, rounded as it rounds it
    drift = drift_pct(proposal, price)
    requote = Outcome(status="requote", proposal_id=proposal["proposal_id"], price=price)
    if drift > deps.settings.risk.max_price_drift_pct:
        return {**requote, "drift_pct": round(drift, 4), "reasons": [f"price moved {drift:.3f}% to {price}"]}
    # Exactly the approved order (its size too, not a re-derived one), against the account and price now.
    trade = TradeIdea.model_validate(proposal)
    verdict = (await price_trade(deps.services, ctx.account_id, trade, ctx.risk_per_trade_pct)).verdict
    return None if verdict.passed else {**requote, "reasons": verdict.reasons}


async def place(deps: Deps, ctx: Context, proposal: Proposal) -> OrderResult | State:
    """Under the account's lease: the broker's result, or the state update when nothing was placed."""
    try:
        # Ask first: a crash (or a lost reply) after an earlier send must not become a second order
        # or a re-quote of an order that exists. None means the broker has no record of this key.
        found = await deps.services.broker.find_order(proposal["proposal_id"], ctx.account_id)
    except Exception as exc:
        return await unknown_outcome(deps, ctx, proposal, exc)
    if found is not None:
        return found.model_copy(update={"duplicate": True})
    if proposal["kind"] == "open" and not proposal["attempts"]:
        requote = await still_valid(deps, ctx, proposal)
        if requote is not None:
            await deps.audit.append("requote", ctx.user_id, run_thread_id(), requote)
            return State(outcome=requote, proposal=None)
    try:
        return await send(deps, ctx, proposal)
    except Exception as exc:  # outcome unknown: keep the proposal, so a retry reuses its key
        return await unknown_outcome(deps, ctx, proposal, exc)


async def account_busy(deps: Deps, ctx: Context, proposal: Proposal) -> State:
    """Nothing was sent: the account stayed busy; the trader may approve again."""
    notice = ACCOUNT_BUSY
    outcome = Outcome(status="account_busy", proposal_id=proposal["proposal_id"])
    await deps.audit.append("account_busy", ctx.user_id, run_thread_id(), outcome)
    return State(outcome=outcome, proposal={**proposal, "notice": notice})


async def unknown_outcome(deps: Deps, ctx: Context, proposal: Proposal, exc: Exception) -> State:
    """The send's outcome is unknown: the proposal stays, so approving again reuses its key."""
    notice = unknown_outcome_text(str(exc))
    retry: Proposal = {**proposal, "attempts": proposal["attempts"] + 1, "notice": notice}
    outcome = Outcome(status="unknown", proposal_id=proposal["proposal_id"], error=str(exc))
    await deps.audit.append("execution_unknown", ctx.user_id, run_thread_id(), outcome)
    return State(outcome=outcome, proposal=retry)


def make_execute(deps: Deps) -> Node:
    locks = Leases(
        deps.services.redis,
        f"{deps.prefix}account:",
        ACCOUNT_LEASE_SECONDS,
        wait=True,
        wait_seconds=ACCOUNT_WAIT_SECONDS,
    )

    async def execute(state: State, runtime: Runtime[Context]) -> State:
        ctx = required(runtime.context)
        proposal, decision = state.get("proposal"), state.get("decision")
        call = state.get("pending_call")
        # .get: this guard must hold whatever the state holds (a hand-edited checkpoint, a Studio fork).
        approved = (
            proposal is not None
            and decision is not None
            and decision.get("decision") == "approve"
            and proposal.get("proposal_id") is not None
            and decision.get("proposal_id") == proposal.get("proposal_id")
        )
        if not approved or proposal is None:
            # Routing only sends approvals here; this guard keeps the broker unreachable if that ever changes.
            refused = Outcome(status="refused", proposal_id=proposal["proposal_id"] if proposal else None)
            await deps.audit.append("execution_refused", ctx.user_id, run_thread_id(), refused)
            fact = Fact(kind="failed", category="not_approved", proposal_id=refused["proposal_id"])
            message = fact_message(call, [fact])
            return State(messages=[message], outcome=refused, proposal=None, pending_call=None)
        try:
            async with locks.hold("broker", ctx.account_id):
                sent = await place(deps, ctx, proposal)
        except LeaseHeld:  # another order of this account held it for ACCOUNT_WAIT_SECONDS: nothing sent
            return await account_busy(deps, ctx, proposal)
        if not isinstance(sent, OrderResult):  # re-quote or unknown outcome: the update to apply
            return sent
        await deps.invalidate_portfolio(ctx.account_id)
        outcome = Outcome(
            status="executed" if sent.success else "failed",
            success=sent.success,
            ticket=sent.ticket,
            executed_price=sent.executed_price,
            slippage=sent.slippage,
            message=sent.message,
            idempotency_key=sent.idempotency_key,
            duplicate=sent.duplicate,
            proposal_id=proposal["proposal_id"],
            kind=proposal["kind"],
        )
        await deps.audit.append("execution", ctx.user_id, run_thread_id(), outcome)
        fact = Fact(kind="executed", proposal_id=proposal["proposal_id"], message=sent.message)
        if not sent.success:
            fact = {**fact, "kind": "failed", "category": "broker"}
        message = fact_message(call, [fact], sent_text(outcome))
        return State(messages=[message], outcome=outcome, proposal=None, pending_call=None)

    return execute
