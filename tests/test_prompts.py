"""System prompt content, the live-context message and history trimming."""

from __future__ import annotations

from datetime import UTC, datetime

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from config.settings import RiskSettings
from prompts import SYSTEM_PROMPT, live_context, trim_history
from prompts.system import approx_tokens

LIMITS = RiskSettings.model_validate({})


def test_system_prompt_carries_the_seed_rules_in_both_languages() -> None:
    p = SYSTEM_PROMPT
    for needle in (
        "NUNCA ejecutes operaciones sin confirmación explícita",
        "NEVER trade without the trader's",
        "< 60%, recomienda ESPERAR",
        "Manipulation, recomienda NO OPERAR",
        "R:R y % de la cuenta",
        "PRIORIZA la preservación del capital",
        "Answer in the trader's language",
        "**Señal / Signal: [LONG/SHORT/HOLD]**",
        "- Stop Loss: [price] ([X] pips)",
        "**Riesgo / Risk:** [X]%",
    ):
        assert needle in p, needle
    assert "{" not in p  # no template slots: nothing live is formatted into the static prefix


def test_live_context_lists_market_portfolio_limits_and_time() -> None:
    market = {"symbol": "XAUUSD", "current_price": 4401.5, "amd_phase": "accumulation", "trend": "bullish",
              "ict_context": {"killzone": "london_open"}}  # fmt: skip
    portfolio = {"balance": 10000, "equity": 10150.5, "daily_pnl": -20, "positions": [
        {"ticket": 7, "type": "BUY", "size": 0.1, "symbol": "XAUUSD", "open_price": 4390.0,
         "stop_loss": 4380.0, "take_profit": 4420.0, "profit": 115.0}]}  # fmt: skip
    text = live_context(market, portfolio, LIMITS, datetime(2026, 3, 2, 8, 5, tzinfo=UTC))
    for needle in ("2026-03-02 08:05", "current_price: 4401.5", "killzone: london_open", "Equity: $10,150.50",
                   "Open positions: 1", "#7 BUY 0.1 XAUUSD @ 4390.0", "Max risk per trade: 1.0%",
                   "min confidence 60%"):  # fmt: skip
        assert needle in text, needle
    empty = live_context(None, None, LIMITS, datetime(2026, 3, 2, tzinfo=UTC))
    assert "Market: no disponible" in empty and "Portfolio: no disponible" in empty


def _turns(n: int) -> list[BaseMessage]:
    msgs: list[BaseMessage] = []
    for i in range(n):
        msgs.append(HumanMessage(f"question {i} " + "x" * 200))
        call_id = f"call{i}"
        msgs.append(
            AIMessage("", tool_calls=[{"name": "get_ml_signal", "args": {"symbol": "XAUUSD"}, "id": call_id}])
        )
        msgs.append(ToolMessage('{"action": "LONG"} ' + "y" * 200, tool_call_id=call_id))
        msgs.append(AIMessage(f"answer {i} " + "z" * 200))
    return msgs


def test_trim_keeps_newest_within_budget_and_never_splits_tool_groups() -> None:
    history = _turns(6)
    total = sum(approx_tokens(m) for m in history)
    for budget in range(10, total + 50, 17):
        kept = trim_history(history, budget)
        assert kept == history[len(history) - len(kept) :]  # a suffix: the newest messages, in order
        assert kept[-1] is history[-1]
        assert sum(approx_tokens(m) for m in kept) <= budget or len(kept) == 1
        assert not isinstance(kept[0], ToolMessage)
        for i, m in enumerate(kept):
            if isinstance(m, AIMessage) and m.tool_calls:
                follower = kept[i + 1]
                assert isinstance(follower, ToolMessage)
                assert follower.tool_call_id == m.tool_calls[0]["id"]
    assert trim_history(history, total) == history


def test_trim_splits_at_group_boundary_not_inside() -> None:
    history = _turns(2)
    # budget = the last tool group plus the final answer, minus one token: the tool group can't be half-kept
    tail = history[-3:]
    budget = sum(approx_tokens(m) for m in tail) - 1
    kept = trim_history(history, budget)
    assert kept == history[-1:]


def test_trim_drops_orphan_tool_messages() -> None:
    orphan = ToolMessage("result", tool_call_id="gone")
    kept = trim_history([orphan, HumanMessage("hi"), AIMessage("hello")], 10_000)
    assert [m.content for m in kept] == ["hi", "hello"]
