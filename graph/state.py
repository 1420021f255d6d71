"""The graph state: the conversation plus typed fields for context, proposal, verdict and outcome."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict: pydantic (the input/output schemas `langgraph dev` serves to Studio) refuses
# typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict


class PendingCall(TypedDict):
    """A proposal tool call on its way through the gate (args may carry the trader's edits)."""

    id: str
    name: str
    args: dict[str, Any]


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # Live context snapshots (small dicts); they never enter `messages`.
    market: dict[str, Any] | None
    portfolio: dict[str, Any] | None
    # The proposal tool call being gated, the proposal awaiting approval and this run's last gate verdict.
    pending_call: PendingCall | None
    proposal: dict[str, Any] | None
    verdict: dict[str, Any] | None
    decision: dict[str, Any] | None
    outcome: dict[str, Any] | None
    # Session-wide: the last signal any tool produced.
    last_signal: dict[str, Any] | None
    # Turn-scoped (reset by load_context): tool rounds, tools used, the signal of this turn, slash turn.
    tool_rounds: int
    tools_used: list[str]
    turn_signal: dict[str, Any] | None
    slash: bool
    notice: str | None


TURN_RESET: dict[str, Any] = {
    "verdict": None,
    "slash": False,
    "tool_rounds": 0,
    "tools_used": [],
    "turn_signal": None,
    "outcome": None,
    "decision": None,
    "notice": None,
}
