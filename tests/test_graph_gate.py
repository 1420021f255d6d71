"""The risk gate inside the graph: each rule family blocks, nothing reaches the broker, the audit says why."""

from __future__ import annotations

from typing import Any

import pytest

from graph.model.fake import tool_call
from tests.support.graph import (
    LOW_CONFIDENCE,
    MANIPULATION,
    SESSION,
    USER,
    CopilotFactory,
    audit_of,
    buy_levels,
    positions,
)
from tools.market.clock import ManualClock
from tools.services import Services


async def assert_blocked(
    make_copilot: CopilotFactory, services: Services, args: dict[str, Any], fragment: str, **overrides: Any
) -> None:
    """The model proposes `args`; the gate blocks with a reason containing `fragment`; no order."""
    replies = [tool_call("execute_trade", {"symbol": "XAUUSD", "action": "BUY", **args}), "Understood."]
    async with make_copilot(replies, **overrides) as copilot:
        result = await copilot.chat(USER, SESSION, "buy gold")
        assert result.pending_approval is None
        assert result.tools_used == ["execute_trade"]
        state = await copilot.state(USER, SESSION)
        assert state is not None
        tool = next(m for m in state.messages if m["role"] == "tool")
        assert tool["content"].startswith("BLOCKED") and fragment in tool["content"], tool["content"]
    assert await positions(services) == []
    verdicts = [e for e in await audit_of(services).entries() if e["kind"] == "verdict"]
    assert len(verdicts) == 1 and verdicts[0]["data"]["verdict"]["passed"] is False
    assert not [e for e in await audit_of(services).entries() if e["kind"] in ("proposal", "execution")]


async def test_stop_loss_missing(make_copilot: CopilotFactory, services: Services) -> None:
    levels = await buy_levels(services)
    await assert_blocked(
        make_copilot, services, {"take_profit": levels["take_profit"]}, "stop_loss: Field required"
    )


async def test_stop_loss_on_the_wrong_side(make_copilot: CopilotFactory, services: Services) -> None:
    quote = await services.market.get_quote("XAUUSD")
    args = {"stop_loss": round(quote.ask + 5, 2), "take_profit": round(quote.ask + 20, 2)}
    await assert_blocked(make_copilot, services, args, "must be below the entry")


async def test_risk_reward_below_minimum(make_copilot: CopilotFactory, services: Services) -> None:
    # 5 USD risk for 4 USD reward: R:R 0.8 < 1.5.
    await assert_blocked(make_copilot, services, await buy_levels(services, 5.0, 0.8), "R:R 0.80")


async def test_size_above_the_risk_cap(make_copilot: CopilotFactory, services: Services) -> None:
    # 1 lot with a 5 USD stop risks 500 USD; 1% of 10,000 USD equity allows 100 USD.
    args = {"size": 1.0, **await buy_levels(services)}
    await assert_blocked(make_copilot, services, args, "exceeds the max risk per trade")


async def test_low_confidence_says_wait(
    make_copilot: CopilotFactory, services: Services, clock: ManualClock
) -> None:
    clock.set(LOW_CONFIDENCE)
    await assert_blocked(make_copilot, services, await buy_levels(services), "wait: signal confidence 50%")


async def test_manipulation_phase_blocks(
    make_copilot: CopilotFactory, services: Services, clock: ManualClock
) -> None:
    clock.set(MANIPULATION)
    await assert_blocked(make_copilot, services, await buy_levels(services), "'manipulation'")


async def test_max_open_positions(make_copilot: CopilotFactory, services: Services) -> None:
    levels = await buy_levels(services)
    await assert_blocked(
        make_copilot, services, levels, "max open positions is 0", risk={"max_open_positions": 0}
    )


async def test_symbol_not_allowed(make_copilot: CopilotFactory, services: Services) -> None:
    levels = await buy_levels(services)
    await assert_blocked(
        make_copilot,
        services,
        levels,
        "symbol: Input should be 'EURUSD' (got 'XAUUSD')",
        risk={"allowed_symbols": ["EURUSD"]},
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("/buy XAUUSD 50 sl 1 tp 99999", "exceeds the max risk"),
        ("/sell BTCUSD sl 1 tp 2", "symbol: Input should be"),
    ],
)
async def test_slash_proposals_go_through_the_same_gate(
    make_copilot: CopilotFactory, services: Services, text: str, fragment: str
) -> None:
    async with make_copilot(["never used"]) as copilot:
        result = await copilot.chat(USER, SESSION, text)
        assert result.pending_approval is None
        assert result.response.startswith("BLOCKED") and fragment in result.response, result.response
    assert await positions(services) == []


async def test_weekend_price_is_market_closed(
    make_copilot: CopilotFactory, services: Services, clock: ManualClock
) -> None:
    from datetime import UTC, datetime

    clock.set(datetime(2026, 2, 28, 12, 0, tzinfo=UTC))  # Saturday: the last gold price is Friday's close
    levels = await buy_levels(services)
    await assert_blocked(
        make_copilot, services, levels, "market closed: the last XAUUSD price is from 2026-02-27"
    )


async def test_a_chosen_signal_timeframe_does_not_change_the_verdict(
    make_copilot: CopilotFactory, services: Services, clock: ManualClock
) -> None:
    """At LOW_CONFIDENCE the engine says 5m HOLD 50% but 15m HOLD 65% (checked on the real data when
    writing this): asking for the 15m signal first must not lend its confidence to the gate."""
    clock.set(LOW_CONFIDENCE)
    fifteen = await services.signals.get_signal("XAUUSD", "15m")
    five = await services.signals.get_signal("XAUUSD", "5m")
    assert fifteen.confidence >= 0.60 > five.confidence  # the premise: 15m would pass, 5m does not
    levels = await buy_levels(services)
    async with make_copilot(["never used"]) as copilot:
        shown = await copilot.chat(USER, SESSION, "/signal XAUUSD 15m")
        assert "65" in shown.response, shown.response
        result = await copilot.chat(
            USER, SESSION, f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
        )
        assert result.pending_approval is None
        assert result.response.startswith("BLOCKED"), result.response
        assert "wait: signal confidence 50% is below the minimum 60%" in result.response
    assert await positions(services) == []


@pytest.mark.parametrize(
    ("key", "value"), [("stop_loss", "nan"), ("take_profit", float("inf")), ("size", "NaN")]
)
async def test_non_finite_numbers_from_the_model_are_blocked(
    make_copilot: CopilotFactory, services: Services, key: str, value: Any
) -> None:
    args: dict[str, Any] = {**await buy_levels(services), key: value}
    await assert_blocked(make_copilot, services, args, f"{key}: Input should be a finite number")


async def test_slash_nan_levels_are_refused_before_the_gate(
    make_copilot: CopilotFactory, services: Services
) -> None:
    async with make_copilot(["never used"]) as copilot:
        for text in ("/buy XAUUSD sl nan tp 5000", "/modify 1 sl nan"):
            result = await copilot.chat(USER, SESSION, text)
            assert result.pending_approval is None
            assert "SL must be a finite number, got 'nan'" in result.response, result.response
    assert await positions(services) == []
    assert not [e for e in await audit_of(services).entries() if e["kind"] in ("proposal", "execution")]


async def test_a_model_claiming_execution_after_a_block_never_stands_alone(
    make_copilot: CopilotFactory, services: Services
) -> None:
    """The model proposes 5 lots, the gate blocks, the model then says "Ejecutado.": the trader still reads
    the gate's own line, and the result carries the verdict and no order."""
    args = {"symbol": "XAUUSD", "action": "BUY", "size": 5.0, **await buy_levels(services)}
    async with make_copilot([tool_call("execute_trade", args), "Ejecutado."]) as copilot:
        result = await copilot.chat(USER, SESSION, "compra 5 lotes de oro")
    assert result.response.startswith("BLOCKED by the risk rules, nothing was executed")
    assert result.response.rstrip().endswith("Ejecutado.")
    assert result.verdict is not None and result.verdict["passed"] is False
    assert any("exceeds the max risk per trade" in r for r in result.verdict["reasons"])
    assert result.order is None and await positions(services) == []


async def test_a_passed_proposal_reports_its_verdict_and_a_chat_turn_after_it_none(
    make_copilot: CopilotFactory, services: Services
) -> None:
    args = {"symbol": "XAUUSD", "action": "BUY", **await buy_levels(services)}
    async with make_copilot([tool_call("execute_trade", args), "Hola."]) as copilot:
        proposed = await copilot.chat(USER, SESSION, "buy gold")
        assert proposed.pending_approval is not None
        assert proposed.verdict is not None and proposed.verdict["passed"] is True
        later = await copilot.chat(USER, SESSION, "/portfolio")
        assert later.verdict is None  # no gate ran in this turn
