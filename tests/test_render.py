"""Slash-command answers render tool results as text a trader reads (no model involved)."""

import json

from graph.answers import fact_message
from graph.approval import Fact
from graph.messages import render_message, render_result


def test_signal_with_levels_and_a_wait_signal() -> None:
    long = {
        "symbol": "XAUUSD",
        "timeframe": "5m",
        "action": "LONG",
        "confidence": 0.75,
        "entry_price": 5392.28,
        "stop_loss": 5380.0,
        "take_profit": 5416.84,
        "risk_reward": 2.0,
        "amd_phase": "markup",
        "killzone": "ny_am",
        "reasoning": ["Trend: up (+0.30)"],
        "source": "technical_engine",
    }
    text = render_result("get_ml_signal", json.dumps(long))
    assert text.splitlines()[0] == "Signal XAUUSD 5m: LONG (confidence 75%, source technical_engine)"
    assert "Entry 5392.28  SL 5380.0  TP 5416.84  R:R 2.0" in text and "- Trend: up (+0.30)" in text
    hold = {**long, "action": "HOLD", "entry_price": None, "stop_loss": None, "take_profit": None}
    waiting = render_result("get_ml_signal", json.dumps(hold))
    assert "None" not in waiting and "No trade levels: the signal is to wait." in waiting


def test_execution_shows_the_sentence_not_the_json() -> None:
    content = 'EXECUTED: BUY 0.2 XAUUSD filled at 5392.28 (ticket 1)\n{"status": "executed", "ticket": 1}'
    fact = Fact(kind="executed", message="BUY 0.2 XAUUSD filled at 5392.28 (ticket 1)")
    message = fact_message(None, [fact], content)  # as execute writes it
    assert render_message(message) == "EXECUTED: BUY 0.2 XAUUSD filled at 5392.28 (ticket 1)"
