"""The approval data, typed once: the proposal call, the gate's verdict, the proposal, the trader's decision
and what execute did. The nodes, the facade's answers and the HTTP API use these TypedDicts; checkpoints store
them as the plain dicts they are. No framework imports: the risk rules use them too."""

from __future__ import annotations

from typing import Literal, NotRequired

# typing_extensions' TypedDict: pydantic (the HTTP API's responses and the input/output schemas
# `langgraph dev` serves to Studio) refuses typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict

from tools.schemas import JsonObject, Side

# Sane upper bounds for what a trader may type (approval edits, lots and prices in slash commands, the HTTP
# API's DecisionRequest): far above any real order, low enough that no number overflows a float, a 64-bit
# checkpoint integer or a later rule. The risk gate still applies the real limits.
MAX_LOTS = 1000.0
MAX_PRICE = 1e7

ProposalKind = Literal["open", "close", "modify"]
# Outcomes of a send to the broker; "requote", "refused" and "account_busy" never reached it.
OrderStatus = Literal["executed", "failed", "unknown"]
OutcomeStatus = Literal["executed", "failed", "unknown", "requote", "refused", "account_busy"]


class PendingCall(TypedDict):
    """A proposal tool call on its way through the gate: its arguments as called and, once the trader edited
    a new trade, the edited trade (a tools.schemas.TradeIdea as JSON), which the gate judges instead."""

    id: str
    name: str
    args: JsonObject
    trade: NotRequired[JsonObject]


class VerdictSummary(TypedDict):
    """What the risk gate said of a proposal: passed, and the reasons (blocking ones when blocked)."""

    passed: bool
    reasons: list[str]


class ProposalTerms(TypedDict):
    """A priced trade: what would be sent and what it risks (graph.risk.proposals prices it; the audit trail
    records it for blocked proposals too)."""

    kind: ProposalKind
    symbol: str
    side: Side
    size_lots: float
    entry_price: float
    # What the broker is asked to set (a modify: None keeps the position's level).
    stop_loss: float | None
    take_profit: float | None
    stop_pips: float | None
    take_profit_pips: float | None
    risk_usd: float
    risk_pct: float
    reward_usd: float
    risk_reward: float | None
    signal_reasoning: list[str]
    ticket: int | None  # close and modify
    # A new trade: the % of equity it was sized with (the trader's preference, tools.preferences) and the
    # configured cap (risk.max_risk_per_trade_pct); absent in proposals made before preferences existed.
    risk_limit_pct: NotRequired[float]
    risk_cap_pct: NotRequired[float]


class Proposal(ProposalTerms):
    """A trade that passed the risk gate and waits for the trader's decision (graph.risk.proposals)."""

    proposal_id: str
    verdict: VerdictSummary
    created_at: str
    expires_at: str
    # Set when the gate priced this again after an approval (price drift or changed limits).
    requote_of: str | None
    # Set when a send attempt's outcome is unknown: approving again retries with the same key.
    attempts: int
    notice: str | None


class Decision(TypedDict):
    """The trader's answer to a proposal (edits: field -> new value). A client may leave out edits and
    reason; the approval node's `check_decision` fills them in, and records an expired proposal's answer
    as "invalid" with the reason."""

    proposal_id: str
    decision: Literal["approve", "edit", "reject", "invalid"]
    edits: NotRequired[dict[str, float]]
    reason: NotRequired[str]


class Outcome(TypedDict):
    """What execute did with an approved proposal; the broker's OrderResult fields when it sent one."""

    status: OutcomeStatus
    proposal_id: str | None
    kind: NotRequired[ProposalKind]
    # executed / failed: the broker's answer (tools.schemas.OrderResult)
    success: NotRequired[bool]
    ticket: NotRequired[int | None]
    executed_price: NotRequired[float | None]
    slippage: NotRequired[float]
    message: NotRequired[str]
    idempotency_key: NotRequired[str | None]
    duplicate: NotRequired[bool]
    # requote: the price now, how far it moved, why; unknown: the error
    price: NotRequired[float]
    drift_pct: NotRequired[float]
    reasons: NotRequired[list[str]]
    error: NotRequired[str]


FactKind = Literal["executed", "blocked", "rejected", "expired", "failed", "abandoned"]


class Fact(TypedDict):
    """What happened to a proposal, said by the code that did it (graph.answers renders it, graph.results
    reads it): executed or failed (`category` "broker": the broker refused; "not_approved": execute found no
    approval) with the broker's `message`; blocked by the gate (its `reasons`, and `wait` when every block
    is only a wait for the signal); rejected by the trader (`reason`); expired (`decided`: a decision came
    too late); abandoned for a new proposal (`reason`; `found`: what the broker knows of an earlier
    unanswered attempt)."""

    kind: FactKind
    proposal_id: NotRequired[str | None]
    reasons: NotRequired[list[str]]
    wait: NotRequired[bool]
    reason: NotRequired[str]
    category: NotRequired[Literal["broker", "not_approved"]]
    message: NotRequired[str]
    expires_at: NotRequired[str]
    decided: NotRequired[bool]
    found: NotRequired[Literal["none", "placed", "refused", "unknown"]]
    error: NotRequired[str]


def interrupt_proposal(value: object) -> Proposal | None:
    """The proposal an approval interrupt carries: its value (graph.nodes.human_approval.ApprovalRequest,
    `type` "approval_required"), or a list of such values; None for any other interrupt."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and item.get("type") == "approval_required" and item.get("proposal"):
            proposal: Proposal = item["proposal"]
            return proposal
    return None


def risk_limit_text(terms: ProposalTerms) -> str | None:
    """ "your risk 0.5 %, cap 1 %": the trader's risk per trade the trade was sized with, and the cap (None
    for a close or modify, or a proposal made before preferences existed). Every client shows this line."""
    limit, cap = terms.get("risk_limit_pct"), terms.get("risk_cap_pct")
    if limit is None or cap is None:
        return None
    return f"your risk {limit:g} %, cap {cap:g} %"
