"""Slash-command parsing: each command, optional parts, and usage errors a trader can act on."""

from __future__ import annotations

import pytest

from graph.slash import DecisionCommand, HelpCommand, SlashError, ToolCommand, parse_slash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/signal XAUUSD 15m", ToolCommand("get_ml_signal", {"symbol": "XAUUSD", "timeframe": "15m"})),
        ("/signal xauusd", ToolCommand("get_ml_signal", {"symbol": "XAUUSD"})),
        ("/analyze EURUSD", ToolCommand("analyze_market", {"symbol": "EURUSD"})),
        ("/data XAUUSD 1h 50",
         ToolCommand("get_market_data", {"symbol": "XAUUSD", "timeframe": "1h", "bars": 50})),
        ("  /portfolio  ", ToolCommand("get_portfolio", {})),
        ("/buy XAUUSD 0.1 sl 4380 tp 4420",
         ToolCommand("execute_trade", {"symbol": "XAUUSD", "action": "BUY", "size": 0.1, "stop_loss": 4380.0,
                                       "take_profit": 4420.0})),
        ("/buy XAUUSD sl 4380 tp 4420",
         ToolCommand("execute_trade", {"symbol": "XAUUSD", "action": "BUY", "stop_loss": 4380.0,
                                       "take_profit": 4420.0})),
        ("/SELL eurusd 0.5 TP 1.0750 SL 1.0850",
         ToolCommand("execute_trade", {"symbol": "EURUSD", "action": "SELL", "size": 0.5, "stop_loss": 1.085,
                                       "take_profit": 1.075})),
        ("/buy XAUUSD sl 4380,5 tp 4420", ToolCommand("execute_trade", {"symbol": "XAUUSD", "action": "BUY",
                                                       "stop_loss": 4380.5, "take_profit": 4420.0})),
        ("/close 123456", ToolCommand("close_position", {"ticket": 123456})),
        ("/modify 7 sl 4390", ToolCommand("modify_position", {"ticket": 7, "stop_loss": 4390.0})),
        ("/alert XAUUSD above 4500 romper máximos",
         ToolCommand("set_alert", {"symbol": "XAUUSD", "condition": "above", "price": 4500.0,
                                   "message": "romper máximos"})),
        ("/approve", DecisionCommand("approve", "")),
        ("/reject too close to news", DecisionCommand("reject", "too close to news")),
    ],
)  # fmt: skip
def test_commands(text: str, expected: object) -> None:
    assert parse_slash(text) == expected


def test_help_lists_every_command() -> None:
    result = parse_slash("/help")
    assert isinstance(result, HelpCommand)
    for name in (
        "/signal",
        "/analyze",
        "/portfolio",
        "/buy",
        "/sell",
        "/close",
        "/alert",
        "/approve",
        "/reject",
    ):
        assert name in result.text


@pytest.mark.parametrize("text", ["what is the signal?", "", "/", "// comment", "/ signal", "1/2 lot?"])
def test_ordinary_chat_is_not_a_command(text: str) -> None:
    assert parse_slash(text) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("/buy XAUUSD 0.1 tp 4420", "stop loss is required"),
        ("/buy XAUUSD 0.1 sl 4380", "take profit is required"),
        ("/buy XAUUSD -1 sl 4380 tp 4420", "LOTS must be positive"),
        ("/buy XAUUSD lots sl 4380 tp 4420", "LOTS must be a number"),
        ("/buy", "/buy SYMBOL [LOTS] sl PRICE tp PRICE"),
        ("/buy XAUUSD 0.1 sl 4380 tp", "levels go in pairs"),
        ("/buy XAUUSD 0.1 stop 4380 tp 4420", "unknown level 'stop'"),
        ("/signal XAUUSD 7m", "unknown timeframe '7m'"),
        ("/signal", "/signal SYMBOL"),
        ("/close abc", "ticket must be a positive whole number"),
        ("/modify 7", "/modify TICKET"),
        ("/alert XAUUSD near 4500 x", "above|below"),
        ("/signal $$$", "is not a symbol"),
        ("/launch rockets", "unknown command /launch"),
        # float() reads these; NaN would then pass every later comparison
        ("/modify 1 sl nan", "SL must be a finite number, got 'nan'"),
        ("/buy XAUUSD sl nan tp 5000", "SL must be a finite number, got 'nan'"),
        ("/buy XAUUSD inf sl 4380 tp 4420", "LOTS must be a finite number, got 'inf'"),
        ("/sell XAUUSD sl 4420 tp -Infinity", "TP must be a finite number"),
        ("/alert XAUUSD above NaN x", "PRICE must be a finite number"),
    ],
)
def test_usage_errors(text: str, fragment: str) -> None:
    result = parse_slash(text)
    assert isinstance(result, SlashError) and fragment in result.message, result
