"""A real language model in the loop: llama-cpp-python's OpenAI-compatible server on SmolLM2-135M-Instruct,
through the real ChatOpenAI (graph/model/openai_model.py), in both server modes: the model's own template
(no tools: the copilot's JSON tool mode) and llama-cpp-python's function-calling format (native tools).

Nothing here scripts what the model says: the assertions hold whatever a 135M model emits (its wrong tools,
broken JSON, rambling), which is the point — the graph, the risk gate and the approval must hold around it.
Answers are kept short (inference.max_tokens) so the file runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from pydantic import Field

from config import Settings, load_settings
from graph.copilot import Copilot
from graph.model.client import build_chat_model
from graph.model.errors import FailureCategory, ModelUnavailable, reset_chat_outcomes
from graph.model.openai_model import ACCEPTED, CopilotChatOpenAI, openai_model_kwargs
from graph.model.openai_server import openai_model_status
from graph.nodes.reason import MODEL_DOWN, MODEL_UNUSABLE
from graph.threads import thread_id
from server.app import create_app
from server.in_thread import free_port
from tests.support.api_support import api_settings
from tests.support.graph import USER, WallClock, positions
from tests.support.llama_server import FUNCTIONS, MODEL, PLAIN, LlamaServer, LlamaServers
from tests.support.serving import serve_app
from tools.services import Services

FAILURE_LEADS = tuple(t.split("{")[0] for t in (MODEL_DOWN, MODEL_UNUSABLE))
TRADING_TURNS = [
    "¿Qué dice la señal del oro ahora?",
    "Compra 0.1 lotes de XAUUSD con stop 10 dólares abajo",
    "¿Cómo está mi cartera?",
    "Vende EURUSD ya, todo lo que puedas",
    "Analiza el oro en 15 minutos y dime si entro",
    "What is the gold signal on the 5 minute chart?",
    "Buy one lot of gold right now",
    "Show me my open positions",
    "Sell 2 lots of EURUSD with a tight stop",
    "Set an alert when gold crosses 3000",
]
CONTEXT_30 = 3072  # the 30-turn session's server context and llm.num_ctx


def real_settings(
    base: Settings, server: LlamaServer, tool_mode: str, **sections: dict[str, Any]
) -> Settings:
    """`base` with the openai provider on `server` (llm.num_ctx = the server's context), short answers."""
    data = base.model_dump()
    llm = {"provider": "openai", "base_url": server.url, "model": MODEL, "tool_mode": tool_mode,
           "num_ctx": server.n_ctx, "request_timeout": 300, **sections.pop("llm", {})}  # fmt: skip
    inference = {"max_tokens": 64, "temperature": 0.2, **sections.pop("inference", {})}
    data["llm"], data["inference"] = {**data["llm"], **llm}, {**data["inference"], **inference}
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return load_settings(**data)


class FirstCallForced(CopilotChatOpenAI):
    """The real client with `tool_choice` forced to one tool on a turn's first call (the trader's message
    last), as llama-cpp-python's function-calling format needs to call a tool at all; the calls after the
    tool result are the model's own choice."""

    forced: str = ""

    async def _astream(  # type: ignore[override]
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        if kwargs.get("tools") and isinstance(messages[-1], HumanMessage):
            kwargs = {**kwargs, "tool_choice": {"type": "function", "function": {"name": self.forced}}}
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk


RealCopilot = Callable[..., AbstractAsyncContextManager[Copilot]]


@pytest.fixture
def real_copilot(services: Services, wall: WallClock) -> RealCopilot:
    """real_copilot(settings, model=None): a Copilot on the test services with the real model client."""

    @asynccontextmanager
    async def factory(tuned: Settings, model: Any = None) -> AsyncIterator[Copilot]:
        services.settings = tuned
        chat_model = model or build_chat_model(tuned)
        async with Copilot.open(tuned, services=services, chat_model=chat_model, now=wall) as copilot:
            yield copilot

    return factory


async def ai_messages(copilot: Copilot, session: str) -> list[AIMessage]:
    state = await copilot.graph.aget_state({"configurable": {"thread_id": thread_id(USER, session)}})
    return [m for m in state.values.get("messages", []) if isinstance(m, AIMessage)]


def failure_of(response: str) -> str | None:
    """The copilot's own message when the model gave no usable answer (what it starts with), else None."""
    return next((lead for lead in FAILURE_LEADS if response.startswith(lead)), None)


@pytest.fixture
def plain(llama_servers: LlamaServers) -> LlamaServer:
    return llama_servers.get(PLAIN)


@pytest.fixture
def functions(llama_servers: LlamaServers) -> LlamaServer:
    return llama_servers.get(FUNCTIONS)


@pytest.fixture(autouse=True)
def _fresh_outcomes() -> None:
    reset_chat_outcomes()


# ------------------------------------------------------------------ turns through the graph


async def test_a_free_text_turn_streams_in_chunks_with_usage(
    real_copilot: RealCopilot, settings: Settings, plain: LlamaServer
) -> None:
    tuned = real_settings(settings, plain, "json", inference={"max_tokens": 200})
    async with real_copilot(tuned) as copilot:
        question = "Hi! Just say hello back, in three words."
        events = [e async for e in copilot.stream(USER, "free", question)]
        replies = await ai_messages(copilot, "free")
    tokens = [str(e["data"]["text"]) for e in events if e["event"] == "token"]
    assert events[-1]["event"] == "final", events[-1]
    response = str(events[-1]["data"]["response"])
    assert failure_of(response) is None, response
    assert len(tokens) >= 2 and response.strip()
    assert "".join(tokens).strip().endswith(response.strip()[-20:])  # the answer is what streamed
    usage = replies[-1].usage_metadata
    assert usage is not None and usage["input_tokens"] > 500 and usage["output_tokens"] > 0


async def test_a_forced_tool_call_goes_through_the_tools_node_to_an_answer(
    real_copilot: RealCopilot, settings: Settings, functions: LlamaServer
) -> None:
    tuned = real_settings(settings, functions, "native", context={"max_tool_rounds": 2})
    model = FirstCallForced(**openai_model_kwargs(tuned), forced="get_ml_signal")
    async with real_copilot(tuned, model) as copilot:
        events = [e async for e in copilot.stream(USER, "tool", "What is the gold signal?")]
        replies = await ai_messages(copilot, "tool")
    # Streamed, llama-cpp-python repeats the tool's name in every chunk; the call is named once.
    assert [c["name"] for c in replies[0].tool_calls] == ["get_ml_signal"]
    assert isinstance(replies[0].tool_calls[0]["args"], dict)
    final = events[-1]
    assert final["event"] == "final" and "get_ml_signal" in final["data"]["tools_used"]
    assert str(final["data"]["response"]).strip() and not replies[-1].tool_calls


async def test_a_real_model_trade_is_gated_and_waits_for_approval(
    real_copilot: RealCopilot, settings: Settings, functions: LlamaServer, services: Services
) -> None:
    tuned = real_settings(settings, functions, "native", context={"max_tool_rounds": 2})
    model = FirstCallForced(**openai_model_kwargs(tuned), forced="execute_trade")
    async with real_copilot(tuned, model) as copilot:
        ask = "Buy 0.1 lots of XAUUSD (gold) with a stop loss 10 dollars below and take profit 20 above"
        result = await copilot.chat(USER, "trade", ask)
        call = (await ai_messages(copilot, "trade"))[0].tool_calls[0]
        assert call["name"] == "execute_trade"  # the model's own arguments, in the tool's schema
        assert await positions(services) == []  # nothing reaches the broker before an approval
        pending = result.pending_approval
        if pending is None:  # the gate blocked the model's terms: its reasons are shown
            assert result.verdict is not None and result.verdict["passed"] is False, result
            assert result.verdict["reasons"] and result.verdict["reasons"][0] in result.response
            assert result.order is None
            return
        decided = await copilot.decide(
            USER, "trade", {"proposal_id": pending["proposal_id"], "decision": "approve"}
        )
        opened = await positions(services)
        assert len(opened) == 1 and decided.order is not None
        assert opened[0].symbol == pending["symbol"] and opened[0].size == pending["size"]


class Counting(CopilotChatOpenAI):
    """The real client, keeping the server tokenizer's count of every prompt it sends (after fitting)."""

    counts: list[int] = Field(default_factory=list)

    async def _fitted(self, messages: list[BaseMessage], tools: Any) -> list[BaseMessage]:
        fitted = await super()._fitted(messages, tools)
        self.counts.append(await self.tokenizer.count_messages(fitted, tools))
        return fitted


async def test_thirty_turns_never_overflow_the_context_by_the_real_tokenizer(
    real_copilot: RealCopilot, settings: Settings, llama_servers: LlamaServers
) -> None:
    """The server's context is llm.num_ctx: a prompt over it would be refused by the server itself."""
    server = llama_servers.get(PLAIN, n_ctx=CONTEXT_30)
    tuned = real_settings(
        settings, server, "json", inference={"max_tokens": 48}, context={"max_tool_rounds": 1}
    )
    model = Counting(**openai_model_kwargs(tuned))
    outcomes: dict[str, int] = {}
    async with real_copilot(tuned, model) as copilot:
        for turn in range(30):
            text = TRADING_TURNS[turn % len(TRADING_TURNS)]
            result = await copilot.chat(USER, "thirty", f"{text} ({turn + 1})")
            assert "did not fit the model's context window" not in result.response, (turn, result.response)
            kind = failure_of(result.response) or "text"
            outcomes[kind] = outcomes.get(kind, 0) + 1
    assert model.tokenizer.source == "server" and len(model.counts) >= 30
    assert max(model.counts) + tuned.inference.max_tokens <= tuned.llm.num_ctx, max(model.counts)
    print(f"30 turns: {len(model.counts)} requests, prompt {min(model.counts)}-{max(model.counts)} tokens "
          f"of {tuned.llm.num_ctx}, scale {model.token_scale:.2f}; {outcomes}")  # fmt: skip


# ------------------------------------------------------------------ 20 turns through the HTTP API


@pytest.mark.parametrize("mode", ["json", "native"])
def test_trading_turns_over_http_never_order_without_approval(
    mode: str, llama_servers: LlamaServers, redis_url: str, shared_data: Path, tmp_path: Path
) -> None:
    """Ten turns per server mode (twenty in all, Spanish and English), whatever the model emits: no 5xx,
    every answer the model's text or a message naming the failure, no order without an approval."""
    server = llama_servers.get(PLAIN if mode == "json" else FUNCTIONS)
    tuned = real_settings(api_settings(redis_url, shared_data, tmp_path), server, mode,
                          context={"max_tool_rounds": 1})  # fmt: skip
    outcomes: dict[str, int] = {}
    with serve_app(create_app(tuned)) as url:
        for i, text in enumerate(TRADING_TURNS):
            reply = httpx.post(
                f"{url}/api/chat", json={"message": text, "session_id": f"t-{mode}"}, timeout=300
            )
            assert reply.status_code < 500, reply.text
            body = reply.json()
            assert str(body["response"]).strip(), (i, body)
            kind = failure_of(body["response"]) or ("proposal" if body["pending_approval"] else "text")
            outcomes[kind] = outcomes.get(kind, 0) + 1
        portfolio = httpx.get(f"{url}/api/portfolio", timeout=30).json()
        health = httpx.get(f"{url}/api/health", timeout=30).json()
    assert portfolio["positions"] == [], portfolio
    assert health["llm_status"] in ("ok", "failing")
    print(f"{mode}: {outcomes}")


# ------------------------------------------------------------------ what the real server does wrong


async def test_streaming_with_automatic_tool_choice_still_answers(
    functions: LlamaServer, settings: Settings
) -> None:
    """llama-cpp-python cannot stream with tool_choice "auto" (HTTP 200, empty body): the client asks again
    without streaming instead of failing with "No generation chunks were returned"."""
    model = build_chat_model(real_settings(settings, functions, "native")).bind_tools([get_signal_tool()])
    chunks = [c async for c in model.astream([HumanMessage("What is the gold signal?")])]
    reply = chunks[0]
    for chunk in chunks[1:]:
        reply = reply + chunk
    assert reply.text.strip() or reply.tool_calls, reply


async def test_a_history_with_tool_calls_is_answered_with_no_tools_bound(
    plain: LlamaServer, settings: Settings
) -> None:
    """A turn past `context.max_tool_rounds` is sent with no tools: the earlier assistant turn that only
    called a tool must not go out as `content: null`, which llama-cpp-python answers with HTTP 500."""
    model = build_chat_model(real_settings(settings, plain, "native"))
    call = {"name": "get_portfolio", "args": {}, "id": "call_1", "type": "tool_call"}
    history = [
        HumanMessage("How is my portfolio?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("balance 10000 USD, no positions", tool_call_id="call_1"),
    ]
    reply = await model.ainvoke(history)
    assert reply.text.strip(), reply


class Payloads(CopilotChatOpenAI):
    """The real client, keeping every chat-completions payload it sends."""

    sent: list[dict[str, Any]] = Field(default_factory=list)

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        self.sent.append(payload)
        return payload


async def test_json_mode_sends_the_format_the_server_takes_and_keeps_its_prefix_past_the_tool_limit(
    plain: LlamaServer, settings: Settings
) -> None:
    """llama-cpp-python takes `response_format` json_object only (HTTP 500 to json_schema): known by its
    tokenizer route, the first JSON-mode request already asks for it. A call without tools after calls with
    them (the reason node's last one past `context.max_tool_rounds`) keeps the JSON instructions and the
    tool list where they were, so the prompt's prefix holds, and its format allows no tool call (an answer
    in `content`)."""
    ACCEPTED.clear()
    model = Payloads(**openai_model_kwargs(real_settings(settings, plain, "json")))
    history = [HumanMessage("What is the gold signal?")]
    firsts = []
    for runnable in (model.bind_tools([get_signal_tool()]), model):
        firsts.append(len(model.sent))
        try:
            await runnable.ainvoke(history)
        except ModelUnavailable as exc:  # a 135M model's reply may be cut off or unusable: not the point
            assert exc.category in (FailureCategory.TRUNCATED, FailureCategory.BAD_REPLY), exc
    formats = [p["extra_body"]["response_format"]["type"] for p in model.sent]
    assert formats and set(formats) == {"json_object"}, formats  # json_schema never tried
    with_tools, without = (model.sent[i] for i in firsts)
    assert without["messages"] == with_tools["messages"]
    assert "## Tool calling (JSON)" in with_tools["messages"][0]["content"]
    calls = [
        p["extra_body"]["response_format"]["schema"]["properties"]["tool_calls"]
        for p in (with_tools, without)
    ]
    assert "maxItems" not in calls[0] and calls[1]["maxItems"] == 0


async def test_a_prompt_over_the_servers_context_is_a_clear_failure(
    plain: LlamaServer, settings: Settings
) -> None:
    """llm.num_ctx set above the server's context: the server refuses, the copilot says so."""
    model = build_chat_model(real_settings(settings, plain, "native", llm={"num_ctx": 32768}))
    with pytest.raises(ModelUnavailable) as failed:
        await model.ainvoke([HumanMessage("gold " * 6000)])
    assert failed.value.category is FailureCategory.TRUNCATED
    assert "did not fit the model's context window" in str(failed.value)


async def test_health_lists_the_served_model(plain: LlamaServer, settings: Settings) -> None:
    assert await openai_model_status(real_settings(settings, plain, "json")) == "ok"
    missing = real_settings(settings, plain, "json", llm={"model": "llama3.1:8b"})
    assert await openai_model_status(missing) == "model_missing"


async def test_the_api_key_is_sent_and_never_logged(
    plain: LlamaServer, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    tuned = real_settings(settings, plain, "json", llm={"api_key": "sk-do-not-log-4242"})
    caplog.set_level(logging.DEBUG)
    reply = await build_chat_model(tuned).ainvoke([HumanMessage("hi")])
    assert reply.text.strip()
    assert "sk-do-not-log-4242" not in caplog.text and "sk-do-not-log-4242" not in repr(tuned)


async def test_a_server_that_is_not_running_is_down(settings: Settings) -> None:
    data = settings.model_dump()
    data["llm"] = {**data["llm"], "provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1"}
    closed = load_settings(**data)
    with pytest.raises(ModelUnavailable) as failed:
        await build_chat_model(closed).ainvoke([HumanMessage("hola")])
    assert failed.value.category is FailureCategory.DOWN and "not reachable" in str(failed.value)
    assert await openai_model_status(closed) == "down"


def get_signal_tool() -> Any:
    @tool
    def get_ml_signal(symbol: str, timeframe: str = "5m") -> str:
        """The trading signal for a symbol (XAUUSD, EURUSD, GBPUSD, USDJPY) on a timeframe."""
        return symbol

    return get_ml_signal
