"""The graph state: the conversation plus typed fields for context, proposal, verdict, decision and outcome
(their types: graph.approval)."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict: pydantic refuses typing.TypedDict before Python 3.12 (Studio's schemas).
from typing_extensions import TypedDict

from graph.approval import Decision, Outcome, PendingCall, Proposal, VerdictSummary
from tools.schemas import JsonObject


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    # Live context snapshots (an Analysis and a Portfolio as JSON): no longer kept (reason fetches them when
    # it pins a turn's live context, graph.live_contexts); load_context clears what earlier versions stored.
    market: JsonObject | None
    portfolio: JsonObject | None
    # The proposal tool call being gated, the proposal awaiting approval and this run's last gate verdict.
    pending_call: PendingCall | None
    proposal: Proposal | None
    verdict: VerdictSummary | None
    decision: Decision | None
    outcome: Outcome | None
    # Session-wide: the last signal any tool produced (a Signal as JSON).
    last_signal: JsonObject | None
    # Turn-scoped (reset by load_context): tool rounds, tools used, the signal of this turn, slash turn.
    tool_rounds: int
    tools_used: list[str]
    turn_signal: JsonObject | None
    slash: bool
    notice: str | None
    # The turn's message as the facade parsed it (graph.slash.command_state), so it is parsed once.
    command: JsonObject | None


TURN_RESET = State(
    verdict=None,
    slash=False,
    tool_rounds=0,
    tools_used=[],
    turn_signal=None,
    outcome=None,
    decision=None,
    notice=None,
)
