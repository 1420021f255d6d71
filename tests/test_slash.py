"""Slash-command parsing: each command, optional parts, and usage errors a trader can act on."""

from __future__ import annotations

import pytest

from graph.slash import (
    DecisionCommand,
    HelpCommand,
    SlashError,
    ToolCommand,
    command_of,
    command_state,
    parse_slash,
)


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
        ("/approve", DecisionCommand("approve", proposal_id="")),
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


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # Bounded before int()/float() results reach a tool, a checkpoint (64-bit) or the broker.
        ("/close 18446744073709551616", "ticket must be at most 9007199254740991, got '1844674407370955"),
        ("/close 9007199254740992", "ticket must be at most 9007199254740991"),
        ("/close " + "9" * 5000, "ticket must be at most"),  # int() of >4300 digits raises ValueError
        ("/close ²", "ticket must be a positive whole number"),  # "²".isdigit() is True, int("²") raises
        ("/close 0", "ticket must be a positive whole number"),
        ("/close 1.5", "ticket must be a positive whole number"),
        ("/modify 18446744073709551616 sl 5", "ticket must be at most"),
        ("/data XAUUSD 1h 99999999999999999999", "BARS must be at most 500"),
        ("/data XAUUSD 1h 501", "BARS must be at most 500"),
        ("/data XAUUSD 1h 0", "BARS must be a positive whole number"),
        ("/data XAUUSD 1h 50.5", "BARS must be a positive whole number"),
        ("/buy XAUUSD 1e400 sl 4380 tp 4420", "LOTS must be a finite number"),
        ("/buy XAUUSD 1001 sl 4380 tp 4420", "LOTS must be at most 1,000"),
        ("/buy XAUUSD 18446744073709551616 sl 4380 tp 4420", "LOTS must be at most 1,000"),
        ("/buy XAUUSD sl 4380 tp 1e8", "TP must be at most 10,000,000"),
        ("/modify 7 sl 99999999999999999999", "SL must be at most 10,000,000"),
        ("/alert XAUUSD above 1e30 x", "PRICE must be at most 10,000,000"),
    ],
)  # fmt: skip
def test_numbers_are_bounded(text: str, fragment: str) -> None:
    result = parse_slash(text)
    assert isinstance(result, SlashError) and fragment in result.message, result
    assert len(result.message) < 200  # a pasted wall of digits is not echoed back whole


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/close 9007199254740991", ToolCommand("close_position", {"ticket": 9007199254740991})),
        ("/close 007", ToolCommand("close_position", {"ticket": 7})),
        ("/data XAUUSD 1h 500",
         ToolCommand("get_market_data", {"symbol": "XAUUSD", "timeframe": "1h", "bars": 500})),
        ("/buy XAUUSD 1000 sl 4380 tp 4420",
         ToolCommand("execute_trade", {"symbol": "XAUUSD", "action": "BUY", "size": 1000.0,
                                       "stop_loss": 4380.0, "take_profit": 4420.0})),
    ],
)  # fmt: skip
def test_numbers_at_the_bounds_pass(text: str, expected: object) -> None:
    assert parse_slash(text) == expected


def test_approve_carries_the_id_given() -> None:
    assert parse_slash("/approve 1a2b3c4d") == DecisionCommand("approve", proposal_id="1a2b3c4d")
    assert parse_slash("/approve  1a2b3c4d5e6f  ") == DecisionCommand("approve", proposal_id="1a2b3c4d5e6f")
    assert parse_slash("/approve") == DecisionCommand("approve", proposal_id="")
    # Too short ids are refused by the copilot against the pending proposal (tests/test_bad_input.py).
    assert parse_slash("/approve a") == DecisionCommand("approve", proposal_id="a")


def test_a_message_is_parsed_once_and_read_back_from_the_state() -> None:
    buy = "/buy XAUUSD 0.1 sl 4380 tp 4420"
    parsed = parse_slash(buy)
    state = command_state(buy, parsed)
    assert command_of(state, buy) == parsed and isinstance(parsed, ToolCommand)
    # What the state says is what counts for its own message (no second parse: a marker shows it)...
    assert command_of(command_state(buy, HelpCommand("marker")), buy) == HelpCommand("marker")
    assert command_of(command_state("hola", None), "hola") is None
    # ...but never for another message, nor when unreadable: then the message is parsed where it is read.
    assert command_of(command_state("/help", HelpCommand("marker")), buy) == parsed
    assert command_of({"message": buy, "type": "tool", "bogus": 1}, buy) == parsed
    assert command_of(None, buy) == parsed


def test_approve_id_is_not_a_reason() -> None:
    approve = parse_slash("/approve 1a2b3c4d")
    assert isinstance(approve, DecisionCommand) and approve.reason == "" and approve.proposal_id == "1a2b3c4d"
