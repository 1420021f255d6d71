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

from graph.approval import PendingCall, Proposal
from graph.context import Context
from graph.deps import Deps

STILL_WAITING = "Still waiting for your decision: your other message did not change this proposal."
SHORT = 8  # graph.slash.SHORT_ID (the proposal id's first characters the trader sees)


def expired(proposal: Proposal, now: datetime) -> bool:
    return now > datetime.fromisoformat(proposal["expires_at"])


def held_message(call: PendingCall, proposal: Proposal) -> ToolMessage:
    """The open proposal call's answer while the trader asks something else: it is not decided yet."""
    content = (
        f"PENDING: proposal {proposal['proposal_id'][:SHORT]} waits for the trader's approval (expires "
        f"{proposal['expires_at']}); the trader sent another message meanwhile. It stays pending until "
        "approved, rejected, replaced by a new proposal or expired."
    )
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])


def expired_text(proposal: Proposal) -> str:
    return (
        f"NOT EXECUTED: proposal {proposal['proposal_id'][:SHORT]} expired at {proposal['expires_at']} "
        "without a decision. Nothing was executed; propose again if needed."
    )


async def abandoned_text(deps: Deps, ctx: Context, proposal: Proposal, why: str) -> str:
    """What became of a proposal the trader moved away from (`why`). "Nothing executed" is said only when it
    is known: a proposal whose earlier send went unanswered (`attempts`) is looked up at the broker first."""
    short = proposal["proposal_id"][:SHORT]
    content = f"Proposal abandoned: {short} was {why}; nothing executed."
    if not proposal["attempts"]:
        return content
    try:
        found = await deps.services.broker.find_order(proposal["proposal_id"], ctx.account_id)
    except Exception as exc:
        return (
            f"Proposal abandoned ({short}, {why}); whether its earlier, unanswered attempt was placed is "
            f"unknown (the broker could not be asked: {exc}). Check /portfolio."
        )
    if found is not None and found.success:
        return f"EXECUTED: {found.message} (the earlier attempt's reply was lost; it was placed)."
    if found is not None:
        return f"Proposal abandoned ({short}, {why}); the broker refused the earlier attempt: {found.message}"
    return content
