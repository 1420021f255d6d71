"""human_approval: pause with the full proposal (interrupt) and validate the trader's decision on resume.

Nothing before `interrupt()` may have side effects: the node re-runs from its start when resumed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.messages import ToolMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph.context import Context
from graph.deps import Deps
from graph.nodes.load_context import Node, thread_id
from graph.state import PendingCall, State

DECISIONS = ("approve", "edit", "reject")
# Trader-facing edit names -> the proposal tool's argument names.
EDIT_ARGS = {"size_lots": "size", "stop_loss": "stop_loss", "take_profit": "take_profit"}
# Sane upper bounds for what a trader may type (edits here, lots and prices in slash commands, the HTTP
# API's DecisionRequest): far above any real order, low enough that no number overflows a float, a 64-bit
# checkpoint integer or a later rule. The risk gate still applies the real limits.
MAX_LOTS = 1000.0
MAX_PRICE = 1e7


class ApprovalEdits(BaseModel):
    """What an "edit" decision may change; every field is optional, at least one must be set."""

    # strict: numbers only (no "1.5" strings, no booleans); ints are accepted and become floats.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)

    size_lots: float | None = Field(None, gt=0, le=MAX_LOTS, description=f"lots (0 < size ≤ {MAX_LOTS:g})")
    stop_loss: float | None = Field(None, gt=0, le=MAX_PRICE, description=f"price (0 < SL ≤ {MAX_PRICE:g})")
    take_profit: float | None = Field(None, gt=0, le=MAX_PRICE, description=f"price (0 < TP ≤ {MAX_PRICE:g})")

    def changes(self) -> dict[str, float]:
        """The fields set, as check_decision returns them ({} when nothing changes)."""
        return self.model_dump(exclude_none=True)


class BadDecision(Exception):
    pass


def _edit_problem(error: ValidationError) -> str:
    """The first problem of an edits payload, in the trader's words."""
    err = error.errors()[0]
    key = ".".join(str(p) for p in err.get("loc", ())) or "edits"
    got = err.get("input")
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown edit {key!r} (expected some of {', '.join(EDIT_ARGS)})"
    if kind == "finite_number":
        return f"edit {key} must be a finite number (got {got!r})"
    bound = MAX_LOTS if key == "size_lots" else MAX_PRICE
    # A whole number too big for a float (10**400) is refused as not a number: say what is wrong with it.
    too_big = kind == "float_type" and isinstance(got, int) and not isinstance(got, bool)
    if kind == "less_than_equal" or too_big:
        return f"edit {key} must be at most {bound:,.10g} (got {_short(got)})"
    if kind in ("greater_than", "float_type", "float_parsing"):
        return f"edit {key} must be a positive number (got {_short(got)})"
    return f"edits are not valid: {key}: {err.get('msg', 'invalid')}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_edits(edits: Any) -> dict[str, float]:
    """The edits as {field: float} ({} for none); raises BadDecision for anything ApprovalEdits refuses."""
    if edits is None or edits == {}:
        return {}
    if not isinstance(edits, dict):
        raise BadDecision(
            f"edits must be an object with some of {', '.join(EDIT_ARGS)} (got {_short(edits)})"
        )
    try:
        return ApprovalEdits.model_validate(edits).changes()
    except ValidationError as exc:
        raise BadDecision(_edit_problem(exc)) from None


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
    edits = check_edits(value.get("edits"))
    if decision == "edit" and not edits:
        raise BadDecision(f"an edit must change some of {', '.join(EDIT_ARGS)}")
    if decision != "edit" and edits:
        # Approving must approve exactly what the trader saw: edited levels go back through the gate first.
        raise BadDecision(f"edits come with decision 'edit', not {decision!r}")
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
        # A decision starts a run of its own: any verdict it reports comes from a gate that runs in it.
        if decision["decision"] == "approve":
            return {"decision": decision, "verdict": None}
        if decision["decision"] == "edit" and call:
            return {
                "decision": decision,
                "verdict": None,
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
        return {
            "decision": decision,
            "verdict": None,
            "messages": [message],
            "proposal": None,
            "pending_call": None,
        }

    return human_approval
