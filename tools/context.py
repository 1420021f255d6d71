"""Runtime facts of a run (who, which account): LangGraph runtime context, never shown to the model."""

from __future__ import annotations

from dataclasses import dataclass

# The symbol of a new session (until the trader names another); one home for it.
DEFAULT_SYMBOL = "XAUUSD"


@dataclass(frozen=True)
class Context:
    user_id: str = "local"
    account_id: str = "paper"
    session_symbol: str = DEFAULT_SYMBOL
    # The trader's preferences (tools.preferences) that change a run: the risk the gate sizes with (None:
    # risk.max_risk_per_trade_pct; never above it) and the language of the answers ("auto": the trader's).
    risk_per_trade_pct: float | None = None
    language: str = "auto"
    # The chat turn this run answers (graph.recovery.OpenTurn), the same when a crash makes it run again:
    # what the turn creates (an alert) is keyed by it, so a re-run creates it once. None outside a turn.
    turn_id: str | None = None


class MissingContext(RuntimeError):
    """A run reached a node or a tool without its runtime context: it stops here, it never falls back to a
    default user or account (that would trade on the shared default account)."""


def required(context: Context | None) -> Context:
    """The run's context; raises MissingContext when the run was started without one (fail closed)."""
    if context is None:
        raise MissingContext(
            "this run has no runtime context (user_id, account_id): it is stopped and nothing was traded; "
            "start runs through the copilot, or pass `context` with the run"
        )
    return context
