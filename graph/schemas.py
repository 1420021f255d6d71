"""JSON-serialisable shapes the facade returns: proposals awaiting approval, chat results, session views."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Proposal(BaseModel):
    """A trade idea that passed the risk gate and waits for the trader's decision."""

    proposal_id: str
    kind: Literal["open", "close", "modify"] = "open"
    symbol: str
    side: Literal["BUY", "SELL"]
    size_lots: float
    entry_price: float
    stop_loss: float | None = None
    take_profit: float | None = None
    stop_pips: float | None = None
    take_profit_pips: float | None = None
    risk_usd: float = 0.0
    risk_pct: float = 0.0
    reward_usd: float = 0.0
    risk_reward: float | None = None
    verdict: dict[str, Any]
    signal_reasoning: list[str] = []
    created_at: str
    expires_at: str
    ticket: int | None = None
    # Set when the gate priced this again after an approval (price drift or changed limits).
    requote_of: str | None = None
    # Set when a send attempt's outcome is unknown: approving again retries with the same key.
    attempts: int = 0
    notice: str | None = None


class ChatResult(BaseModel):
    """The seed's /api/chat response plus the proposal awaiting approval, if any."""

    response: str
    tools_used: list[str] = []
    signal: dict[str, Any] | None = None
    pending_approval: dict[str, Any] | None = None
    # What this run's order did at the broker (executed / failed / unknown), if it sent one.
    order: dict[str, Any] | None = None
    # The risk gate's verdict in this run ({passed, reasons}), if a proposal went through it.
    verdict: dict[str, Any] | None = None


class SessionState(BaseModel):
    session_id: str
    messages: list[dict[str, Any]]
    pending_approval: dict[str, Any] | None = None
    # The last run stopped before its end (a crash); it is completed at the next access or by the start sweep.
    interrupted_run: bool = False
    last_signal: dict[str, Any] | None = None
    checkpoint_id: str | None = None


class CheckpointInfo(BaseModel):
    checkpoint_id: str
    created_at: str | None = None
    step: int | None = None
    next: list[str] = []
    source: str | None = None
