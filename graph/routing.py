"""Where the graph goes after each decision point (the edges, readable from the return types)."""

from __future__ import annotations

from typing import Literal

from graph.messages import open_tool_calls
from graph.state import State
from tools.trading_tools import PROPOSAL_TOOLS


def after_reason(state: State) -> Literal["tools", "risk_gate", "ask_again", "__end__"]:
    calls = open_tool_calls(state.get("messages", []))
    if not calls:
        # A proposal still pending here survived a read-only turn (graph.pending): pause on it again.
        return "ask_again" if state.get("proposal") and state.get("pending_call") else "__end__"
    # Read-only calls run first; the tools node hands proposal calls on to the gate.
    if any(c["name"] not in PROPOSAL_TOOLS for c in calls):
        return "tools"
    return "risk_gate"


def after_tools(state: State) -> Literal["reason", "risk_gate"]:
    calls = open_tool_calls(state.get("messages", []))
    return "risk_gate" if any(c["name"] in PROPOSAL_TOOLS for c in calls) else "reason"


def after_ask_again(state: State) -> Literal["human_approval", "__end__"]:
    return "human_approval" if state.get("proposal") else "__end__"


def after_gate(state: State) -> Literal["human_approval", "reason"]:
    return "human_approval" if state.get("proposal") else "reason"


def after_approval(state: State) -> Literal["execute", "risk_gate", "reason"]:
    decision = state.get("decision")
    kind = decision["decision"] if decision else None
    if kind == "approve":
        return "execute"
    if kind == "edit" and state.get("pending_call"):
        return "risk_gate"
    return "reason"


def after_execute(state: State) -> Literal["risk_gate", "human_approval", "reason"]:
    outcome = state.get("outcome")
    status = outcome["status"] if outcome else None
    if status == "requote":  # price or limits changed since the proposal: the gate prices it again
        return "risk_gate"
    if status in ("unknown", "account_busy"):  # not confirmed / not sent: the trader may approve again
        return "human_approval"
    return "reason"
