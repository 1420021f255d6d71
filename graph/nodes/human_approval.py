"""human_approval: pause with the full proposal (interrupt) and validate the trader's decision on resume.

The interrupt follows LangGraph's human-in-the-loop request (the prebuilt `HumanInterrupt` that Studio,
Agent Chat UI and Agent Inbox render with Accept / Edit / Respond / Ignore) and also carries the whole
proposal under "proposal" for our own clients (web page, terminal, API). The reply formats it is resumed
with, and how they are read, are graph.approval_reply's. An answer that cannot be read asks again; it never
cancels.

Nothing before `interrupt()` may have side effects: the node re-runs from its start when resumed.
"""

from __future__ import annotations

from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.answers import expired_reason, fact_message
from graph.approval import Decision, Fact
from graph.approval_reply import BadDecision, ProposalExpired, approval_request, edited_call, read_decision
from graph.deps import Deps, Node, run_thread_id
from graph.pending import expired_fact
from graph.state import State
from tools.context import Context, required


def make_human_approval(deps: Deps) -> Node:
    async def human_approval(state: State, runtime: Runtime[Context]) -> State:
        proposal, call = state.get("proposal"), state.get("pending_call")
        if proposal is None:  # routing only comes here with a proposal; nothing to ask about
            return State(decision=None)
        ctx = required(runtime.context)
        pid = proposal["proposal_id"]
        problem: str | None = None
        received: object = None
        # Each resume replays the earlier answers in order (LangGraph's validation loop): the first one
        # that can be applied ends the loop; an unreadable one asks again with the reason in the notice.
        while True:
            request = approval_request(proposal, call, problem)
            try:
                value = interrupt(request)
            except GraphInterrupt:
                if problem is not None:  # the newest answer was the unreadable one: record it once
                    invalid = {
                        "proposal_id": pid,
                        "received": received,
                        "decision": "invalid",
                        "reason": problem,
                    }
                    await deps.audit.append("decision", ctx.user_id, run_thread_id(), invalid)
                raise
            try:
                decision = read_decision(value, request, deps.now())
                break
            except ProposalExpired:
                reason = expired_reason(proposal["expires_at"])
                decision = Decision(proposal_id=pid, decision="invalid", edits={}, reason=reason)
                break
            except BadDecision as exc:
                problem, received = str(exc), value
        # From here on the node runs once per decision.
        await deps.audit.append("decision", ctx.user_id, run_thread_id(), {"received": value, **decision})
        # A decision starts a run of its own: any verdict it reports comes from a gate that runs in it.
        kind, reason = decision["decision"], decision.get("reason") or ""
        if kind == "approve":
            return State(decision=decision, verdict=None)
        if kind == "edit" and call:
            edited = edited_call(deps.services, call, decision.get("edits") or {})
            return State(decision=decision, verdict=None, pending_call=edited, proposal=None)
        if kind == "reject":
            fact = Fact(kind="rejected", proposal_id=pid, reason=reason)
        else:  # "invalid": the decision came after the proposal's expiry
            fact = expired_fact(proposal, decided=True)
        message = fact_message(call, [fact])
        return State(decision=decision, verdict=None, messages=[message], proposal=None, pending_call=None)

    return human_approval
