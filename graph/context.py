"""Runtime facts of a run (who, which account): LangGraph runtime context, never shown to the model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    user_id: str = "local"
    account_id: str = "paper"
    session_symbol: str = "XAUUSD"
