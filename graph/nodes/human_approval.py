"""human_approval: pause with the full proposal (interrupt) and validate the trader's decision on resume.

Nothing before `interrupt()` may have side effects: the node re-runs from its start when resumed.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.context import Context
from graph.deps import Deps
from graph.nodes.load_context import Node, thread_id
from graph.state import PendingCall, State

DECISIONS = ("approve", "edit", "reject")
# Trader-facing edit names -> the proposal tool's argument names.
EDIT_ARGS = {"size_lots": "size", "stop_loss": "stop_loss", "take_profit": "take_profit"}


class BadDecision(Exception):
    pass


def check_decision(value: Any, proposal: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The decision as {"decision", "edits", "reason"}; raises BadDecision with a reason to show."""
    if not isinstance(value, dict):
        raise BadDecision("the decision was not understood")
    decision = value.get("decision")
    if decision not in DECISIONS:
        raise BadDecision(f"unknown decision {decision!r} (expected approve, edit or reject)")
    if value.get("proposal_id") != proposal["proposal_id"]:
        raise BadDecision(f"the decision names proposal {value.get('proposal_id')!r}, not the pending one")
    if now > datetime.fromisoformat(proposal["expires_at"]):
        raise BadDecision(f"the proposal expired at {proposal['expires_at']}")
    edits = value.get("edits") or {}
    if decision == "edit":
        if not isinstance(edits, dict) or not edits or set(edits) - set(EDIT_ARGS):
            raise BadDecision(f"edits must change some of {', '.join(EDIT_ARGS)} (got {edits!r})")
        for key, number in edits.items():
            if not isinstance(number, int | float) or isinstance(number, bool) or number <= 0:
                raise BadDecision(f"edit {key} must be a positive number (got {number!r})")
            if not math.isfinite(number):  # NaN passes `<= 0` and every later rule comparison
                raise BadDecision(f"edit {key} must be a finite number (got {number!r})")
    reason = str(value.get("reason") or "")
    return {"decision": decision, "proposal_id": proposal["proposal_id"], "edits": edits, "reason": reason}


def edited_call(call: PendingCall, edits: dict[str, Any]) -> PendingCall:
    args = dict(call["args"])
    for key, number in edits.items():
        args[EDIT_ARGS[key]] = float(number)
    return PendingCall(id=call["id"], name=call["name"], args=args)


def make_human_approval(deps: Deps) -> Node:
    async def human_approval(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        proposal = state.get("proposal") or {}
        call = state.get("pending_call")
        value = interrupt({"type": "approval_required", "proposal": proposal})
        # From here on the node runs once per decision.
        ctx = runtime.context or Context()
        try:
            decision = check_decision(value, proposal, deps.now())
        except BadDecision as exc:
            decision = {"decision": "invalid", "reason": str(exc)}
        audit = {"proposal_id": proposal.get("proposal_id"), "received": value, **decision}
        await deps.audit.append("decision", ctx.user_id, thread_id(), audit)
        if decision["decision"] == "approve":
            return {"decision": decision}
        if decision["decision"] == "edit" and call:
            return {
                "decision": decision,
                "pending_call": edited_call(call, decision["edits"]),
                "proposal": None,
            }
        if decision["decision"] == "reject":
            why = decision["reason"] or "no reason given"
            text = f"REJECTED by the trader ({why}). Nothing was executed."
        else:
            text = f"NOT EXECUTED: {decision['reason']}. The proposal is cancelled; propose again if needed."
        tool_call_id, name = (call["id"], call["name"]) if call else ("none", "execute_trade")
        message = ToolMessage(text, tool_call_id=tool_call_id, name=name, status="error")
        return {"decision": decision, "messages": [message], "proposal": None, "pending_call": None}

    return human_approval
