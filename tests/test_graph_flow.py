"""Graph flow on real services: read-only tool loop, bounded loop, slash commands, model down, streaming."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage

from graph.model.errors import FailureCategory, ModelUnavailable
from graph.model.fake import ScriptedChatModel, tool_call
from graph.nodes.reason import NO_ANSWER
from prompts.system import SYSTEM_PROMPT
from tests.support.graph import SESSION, USER, CopilotFactory, buy_levels
from tools.services import Services


def model_of(copilot: Any) -> ScriptedChatModel:
    model = copilot.chat_model
    assert isinstance(model, ScriptedChatModel)
    return model


async def test_read_only_tool_loop_reports_tools_and_signal(make_copilot: CopilotFactory) -> None:
    replies = [
        tool_call("get_ml_signal", {"symbol": "XAUUSD", "timeframe": "15m"}),
        "Gold: wait for a pullback.",
    ]
    async with make_copilot(replies) as copilot:
        result = await copilot.chat(USER, SESSION, "¿Qué opinas del oro?")
        assert result.response == "Gold: wait for a pullback."
        assert result.tools_used == ["get_ml_signal"]
        assert result.signal is not None and result.signal["symbol"] == "XAUUSD"
        assert result.signal["timeframe"] == "15m"
        second: list[BaseMessage] = model_of(copilot).calls[1]
        # Static prefix first; the live context inside the trader's turn, right before their words; nothing
        # after the tool result (Ollama's templates add the answer header only after a user/tool message).
        assert second[0] == SystemMessage(SYSTEM_PROMPT)
        assert not any(isinstance(m, SystemMessage) for m in second[1:])
        question = next(i for i, m in enumerate(second) if m.content == "¿Qué opinas del oro?")
        assert isinstance(second[question - 1], HumanMessage)
        assert str(second[question - 1].content).startswith("## Contexto actual")
        assert isinstance(second[-1], ToolMessage) and second[-1].name == "get_ml_signal"
        state = await copilot.state(USER, SESSION)
        assert state is not None
        # The live context is never stored in the thread.
        assert [m["role"] for m in state.messages] == ["user", "assistant", "tool", "assistant"]
        assert state.last_signal == result.signal


async def test_tool_loop_is_bounded(make_copilot: CopilotFactory) -> None:
    def again(_: list[BaseMessage]) -> Any:
        return tool_call("get_portfolio", {}, f"call_{uuid.uuid4().hex[:8]}")

    async with make_copilot([again], context={"max_tool_rounds": 2}) as copilot:
        result = await copilot.chat(USER, SESSION, "loop forever")
        model = model_of(copilot)
        assert result.tools_used == ["get_portfolio"]
        state = await copilot.state(USER, SESSION)
        assert state is not None
        assert sum(1 for m in state.messages if m["role"] == "tool") == 2
        # Two rounds with tools (bound once per process and account), then one last call without tools whose
        # tool calls are dropped.
        assert len(model.bound) == 1 and len(model.calls) == 3
        assert "limit" in result.response
        assert result.pending_approval is None


async def test_slash_command_runs_the_tool_without_the_model(make_copilot: CopilotFactory) -> None:
    async with make_copilot(["never used"]) as copilot:
        result = await copilot.chat(USER, SESSION, "/signal XAUUSD 15m")
        assert model_of(copilot).calls == []
        assert result.tools_used == ["get_ml_signal"]
        assert result.response.startswith("Signal XAUUSD 15m:")
        help_result = await copilot.chat(USER, SESSION, "/help")
        assert "/approve" in help_result.response
        bad = await copilot.chat(USER, SESSION, "/nonsense")
        assert "unknown command" in bad.response
        assert model_of(copilot).calls == []


async def test_model_down_gives_a_clear_message_and_slash_still_works(make_copilot: CopilotFactory) -> None:
    down = ModelUnavailable("cannot reach Ollama at http://localhost:11434")
    async with make_copilot([down]) as copilot:
        first = await copilot.chat(USER, SESSION, "hola")
        assert "not available" in first.response and "Ollama" in first.response
        second = await copilot.chat(USER, SESSION, "/portfolio")
        assert second.tools_used == ["get_portfolio"]
        assert "Balance 10000.0" in second.response


async def test_a_failed_model_call_keeps_the_turn_as_it_was_sent(
    make_copilot: CopilotFactory, clock: Any
) -> None:
    """A cut-off answer must not change how that trader turn is rendered later: the next request repeats it
    byte for byte (its live context included), then the short note the model sees for the failed answer
    (the trader got the whole explanation)."""
    cut = ModelUnavailable("the answer was cut off at the length limit", FailureCategory.TRUNCATED)
    async with make_copilot([cut, "Bien."]) as copilot:
        first = await copilot.chat(USER, SESSION, "¿Qué hace el oro?")
        assert "could not be used" in first.response
        clock.set(clock.now() + timedelta(minutes=5))  # the live context of a new turn differs
        await copilot.chat(USER, SESSION, "¿Y ahora?")
        sent_first, sent_second = model_of(copilot).calls
        assert sent_second[: len(sent_first)] == sent_first  # the whole first prompt is the second's prefix
        assert sent_second[len(sent_first)].content == NO_ANSWER.format("truncated")
        assert sent_second[-1].content == "¿Y ahora?"
        assert "only what changed" in str(sent_second[-2].content)


async def test_stream_emits_nodes_tokens_tools_approval_then_final(
    make_copilot: CopilotFactory, services: Services
) -> None:
    levels = await buy_levels(services)
    replies = [
        tool_call("get_ml_signal", {"symbol": "XAUUSD"}),
        tool_call("execute_trade", {"symbol": "XAUUSD", "action": "BUY", **levels}),
        "Proposal sent to the trader.",
    ]
    async with make_copilot(replies) as copilot:
        events = [e async for e in copilot.stream(USER, SESSION, "buy gold")]
        names = [e["event"] for e in events]
        assert names[0] == "node" and events[0]["data"] == {"node": "load_context"}
        assert names[-1] == "final"
        assert names.index("tool") < names.index("tool_result") < names.index("approval_required")
        gated = [e["data"] for e in events if e["event"] == "tool_result"]
        assert gated == [{"name": "get_ml_signal", "ok": True}, {"name": "execute_trade", "ok": True}]
        nodes = [e["data"]["node"] for e in events if e["event"] == "node"]
        assert nodes == ["load_context", "reason", "tools", "reason", "risk_gate", "human_approval"]
        proposal = next(e for e in events if e["event"] == "approval_required")["data"]["proposal"]
        assert events[-1]["data"]["pending_approval"] == proposal
        decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
        after = [e async for e in copilot.stream_decision(USER, SESSION, decision)]
        tokens = "".join(e["data"]["text"] for e in after if e["event"] == "token")
        assert tokens == "Proposal sent to the trader."
        assert after[-1]["event"] == "final" and after[-1]["data"]["pending_approval"] is None


async def test_prompt_fits_num_ctx_with_the_tool_schemas(
    make_copilot: CopilotFactory, services: Services
) -> None:
    """A long chat is trimmed so prompt + tool schemas + the answer's num_predict fit the context window."""
    from prompts.system import approx_tokens, schema_tokens
    from tools.trading_tools import make_tools

    num_ctx, num_predict = 4096, 512
    async with make_copilot(
        ["ok"], llm={"num_ctx": num_ctx}, inference={"max_tokens": num_predict}
    ) as copilot:
        for turn in range(8):
            await copilot.chat(USER, SESSION, f"turn {turn}: " + "long question about gold " * 90)
        sent = model_of(copilot).calls[-1]
    schemas = schema_tokens(make_tools(services))
    assert schemas > 300  # the schemas are a real share of the window, not a rounding error
    total = sum(approx_tokens(m) for m in sent) + schemas
    assert total <= num_ctx - num_predict
    # Trimmed, not emptied: the newest question is there and older ones were dropped.
    assert "turn 7:" in str(sent[-1].content) and not any("turn 0:" in str(m.content) for m in sent)
