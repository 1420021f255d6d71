"""What the code says about a trade, in one place: the typed facts the nodes record (graph.approval.Fact) and
the texts rendered from them. The nodes put a fact on the tool message that answers the proposal call (its
`artifact`, which the model never sees); the facade's answers (graph.results) read those fields, never the
text. The texts are the model's and the trader's: their wording is part of the behaviour."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from langchain_core.messages import BaseMessage, ToolMessage

from graph.approval import Fact, Outcome, PendingCall, Proposal

SHORT = 8  # graph.slash.SHORT_ID (the proposal id's first characters the trader sees)

STILL_WAITING = "Still waiting for your decision: your other message did not change this proposal."
ONE_AT_A_TIME = "Not proposed: one trade proposal at a time. Propose it again after the trader decides."
NOT_APPROVED = "NOT EXECUTED: no approval of this proposal was recorded."
NOTHING_WAITING = "Nothing is waiting for your approval."
ACCOUNT_BUSY = (
    "Another order of this account was still being sent, so this one was not sent. "
    "Approve it again to send it (it is checked again first)."
)


def blocked_text(reasons: Sequence[str]) -> str:
    return "BLOCKED by the risk rules, nothing was executed:\n" + "\n".join(f"- {r}" for r in reasons)


def rejected_text(reason: str) -> str:
    return f"REJECTED by the trader ({reason or 'no reason given'}). Nothing was executed."


def expired_text(proposal_id: str, expires_at: str) -> str:
    """A proposal that expired without a decision (the trader moved on, or the turn outlived it)."""
    return (
        f"NOT EXECUTED: proposal {proposal_id[:SHORT]} expired at {expires_at} "
        "without a decision. Nothing was executed; propose again if needed."
    )


def expired_decision_text(expires_at: str) -> str:
    """A decision that came after the proposal's expiry: nothing can approve it any more."""
    return f"NOT EXECUTED: {expired_reason(expires_at)}. The proposal is cancelled; propose again if needed."


def expired_reason(expires_at: str) -> str:
    return f"the proposal expired at {expires_at}"


def held_text(proposal: Proposal) -> str:
    return (
        f"PENDING: proposal {proposal['proposal_id'][:SHORT]} waits for the trader's approval (expires "
        f"{proposal['expires_at']}); the trader sent another message meanwhile. It stays pending until "
        "approved, rejected, replaced by a new proposal or expired."
    )


def unknown_outcome_text(error: str) -> str:
    return (
        f"The broker did not confirm the order ({error}). It may or may not have been placed: check "
        "/portfolio. Approving this same proposal again retries with the same idempotency key, so it "
        "cannot be placed twice; reject it to stop."
    )


def sent_headline(success: bool, message: str) -> str:
    return f"{'EXECUTED' if success else 'ORDER FAILED'}: {message}"


def sent_text(outcome: Outcome) -> str:
    """The broker's answer: a first line for the trader (slash turns show it as is), the details for the
    model."""
    headline = sent_headline(bool(outcome.get("success")), str(outcome.get("message", "")))
    return f"{headline}\n{json.dumps(outcome, default=str)}"


def abandoned_text(fact: Fact) -> str:
    """What became of a proposal the trader moved away from; "nothing executed" only when it is known."""
    short, why = str(fact.get("proposal_id") or "")[:SHORT], fact.get("reason", "")
    found = fact.get("found", "none")
    if found == "placed":
        return f"EXECUTED: {fact.get('message', '')} (the earlier attempt's reply was lost; it was placed)."
    if found == "refused":
        return (
            f"Proposal abandoned ({short}, {why}); the broker refused the earlier attempt: "
            f"{fact.get('message', '')}"
        )
    if found == "unknown":
        return (
            f"Proposal abandoned ({short}, {why}); whether its earlier, unanswered attempt was placed is "
            f"unknown (the broker could not be asked: {fact.get('error', '')}). Check /portfolio."
        )
    return f"Proposal abandoned: {short} was {why}; nothing executed."


def render(fact: Fact) -> str:
    """The full text of one fact, as the tool message says it."""
    kind = fact["kind"]
    if kind == "blocked":
        return blocked_text(fact.get("reasons", []))
    if kind == "rejected":
        return rejected_text(fact.get("reason", ""))
    if kind == "expired":
        expires_at = fact.get("expires_at", "?")
        if fact.get("decided"):
            return expired_decision_text(expires_at)
        return expired_text(str(fact.get("proposal_id") or ""), expires_at)
    if kind == "abandoned":
        return abandoned_text(fact)
    if kind == "failed" and fact.get("category") == "not_approved":
        return NOT_APPROVED
    return sent_headline(kind == "executed", fact.get("message", ""))


def headline(facts: Sequence[Fact]) -> str:
    """What a turn's answer must carry of one tool message's facts: a block with its reasons (the trader reads
    why even when the model does not explain it) and whatever came with it; otherwise the first line."""
    if facts[0]["kind"] == "blocked":
        return "\n".join(render(f) for f in facts).strip()
    return render(facts[0]).splitlines()[0].rstrip(":")


def facts_of(message: BaseMessage) -> list[Fact]:
    """The facts a tool message carries (none for other messages, and for messages written before facts
    existed: an old checkpoint's answers then just say less, they never say more)."""
    if not isinstance(message, ToolMessage) or not isinstance(message.artifact, dict):
        return []
    facts = message.artifact.get("facts")
    found: list[Fact] = []
    for fact in facts if isinstance(facts, list) else []:
        if isinstance(fact, dict) and "kind" in fact:
            found.append(cast(Fact, fact))
    return found


def fact_message(call: PendingCall | None, facts: list[Fact], content: str | None = None) -> ToolMessage:
    """The answer to the proposal call `call` saying `facts` (`content`: the text when it says more than the
    facts rendered, e.g. the broker's details for the model)."""
    tool_call_id, name = (call["id"], call["name"]) if call else ("none", "execute_trade")
    said = content if content is not None else "\n".join(render(f) for f in facts)
    ok = bool(facts) and facts[0]["kind"] == "executed"
    return ToolMessage(
        said,
        tool_call_id=tool_call_id,
        name=name,
        status="success" if ok else "error",
        artifact={"facts": list(facts)},
    )
