"""A pending proposal across turns: it waits through read-only commands and questions and ends only by a
decision (approve / edit / reject), a new proposal, its expiry or clearing the session.

LangGraph discards the paused approval task when a new message arrives on the thread (a new input starts at
START). So the turn answers the proposal's open tool call with a PENDING note (the transcript stays valid:
every call answered before the trader's next words), keeps `proposal` and `pending_call` in the state, and
at its end re-issues the same call under a new id and pauses on the same proposal again (`ask_again`).
"""

from __future__ import annotations

from datetime import datetime

from langchain_core.messages import ToolMessage

from graph import answers
from graph.answers import STILL_WAITING
from graph.approval import Fact, PendingCall, Proposal
from graph.deps import Deps
from tools.context import Context

__all__ = ["STILL_WAITING", "abandoned", "expired", "expired_fact", "held_message"]


def expired(proposal: Proposal, now: datetime) -> bool:
    return now > datetime.fromisoformat(proposal["expires_at"])


def held_message(call: PendingCall, proposal: Proposal) -> ToolMessage:
    """The open proposal call's answer while the trader asks something else: it is not decided yet."""
    return ToolMessage(content=answers.held_text(proposal), tool_call_id=call["id"], name=call["name"])


def expired_fact(proposal: Proposal, decided: bool = False) -> Fact:
    """`proposal` expired: without a decision, or (`decided`) when a decision came too late."""
    return Fact(
        kind="expired",
        proposal_id=proposal["proposal_id"],
        expires_at=proposal["expires_at"],
        decided=decided,
    )


async def abandoned(deps: Deps, ctx: Context, proposal: Proposal, why: str) -> Fact:
    """What became of a proposal the trader moved away from (`why`). "Nothing executed" is said only when it
    is known: a proposal whose earlier send went unanswered (`attempts`) is looked up at the broker first."""
    fact = Fact(kind="abandoned", proposal_id=proposal["proposal_id"], reason=why, found="none")
    if not proposal["attempts"]:
        return fact
    try:
        found = await deps.services.broker.find_order(proposal["proposal_id"], ctx.account_id)
    except Exception as exc:
        return {**fact, "found": "unknown", "error": str(exc)}
    if found is not None:
        return {**fact, "found": "placed" if found.success else "refused", "message": found.message}
    return fact
