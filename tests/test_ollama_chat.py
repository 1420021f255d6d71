"""ChatOllama over real HTTP against the Ollama double: tool calls, JSON mode, options, prefix, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from config import Settings, load_settings
from config.settings import RiskSettings
from graph.model.client import build_chat_model
from graph.model.errors import ModelUnavailable
from graph.model.json_mode import tool_call_schema
from graph.model.ollama_server import detect_tool_mode, model_status
from prompts import SYSTEM_PROMPT, live_context
from server.in_thread import free_port
from tests.support.ollama import NATIVE, PLAIN, TOOLS
from tests.support.ollama_double import OllamaDouble, Reply

SIGNAL_ARGS = {"symbol": "XAUUSD", "timeframe": "15m"}


@pytest.fixture
def fresh(ollama_double: OllamaDouble) -> OllamaDouble:
    ollama_double.replies.clear()
    ollama_double.requests.clear()
    ollama_double.show_requests.clear()
    return ollama_double


def cfg(base_url: str, model: str = NATIVE, **llm: Any) -> Settings:
    return load_settings(
        llm={"model": model, "base_url": base_url, **llm},
        inference={"temperature": 0.2, "top_p": 0.8, "max_tokens": 512, "repeat_penalty": 1.2},
        logging={"file": None},
    )


async def test_native_tool_calls_and_options_on_the_wire(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(
        Reply(tool_calls=[{"name": "get_ml_signal", "arguments": {"symbol": "XAUUSD", "timeframe": "15m"}}])
    )
    model = build_chat_model(cfg(ollama_url, num_ctx=4096, keep_alive="45m")).bind_tools(TOOLS)
    reply = await model.ainvoke([SystemMessage("sys"), HumanMessage("señal del oro?")])
    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_ml_signal", SIGNAL_ARGS)]
    sent = fresh.requests[-1]
    assert sent["model"] == NATIVE and sent["stream"] is True and sent["keep_alive"] == "45m"
    assert sent["options"] == {"num_ctx": 4096, "num_predict": 512, "repeat_penalty": 1.2, "temperature": 0.2,
                               "top_p": 0.8}  # fmt: skip
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_ml_signal", "get_portfolio"]
    assert sent["messages"][0] == {"role": "system", "content": "sys"}


async def test_streamed_text_arrives_in_chunks_with_usage(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content="La señal es LONG con 72% de confianza.", chunks=4))
    model = build_chat_model(cfg(ollama_url))
    pieces = [chunk.text async for chunk in model.astream([HumanMessage("hola")])]
    assert "".join(pieces) == "La señal es LONG con 72% de confianza." and len([p for p in pieces if p]) == 4
    reply = await build_chat_model(cfg(ollama_url)).ainvoke([HumanMessage("hola")])
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] == 42  # the double's eval_count


async def test_tool_results_are_sent_back_as_tool_messages(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content="LONG 72%"))
    history: list[BaseMessage] = [
        HumanMessage("signal?"),
        AIMessage("", tool_calls=[{"name": "get_ml_signal", "args": {"symbol": "XAUUSD"}, "id": "c1"}]),
        ToolMessage('{"action": "LONG"}', tool_call_id="c1", name="get_ml_signal"),
    ]
    await build_chat_model(cfg(ollama_url)).bind_tools(TOOLS).ainvoke(history)
    roles = [m["role"] for m in fresh.requests[-1]["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert fresh.requests[-1]["messages"][1]["tool_calls"][0]["function"]["name"] == "get_ml_signal"


async def test_json_mode_yields_the_same_tool_calls(fresh: OllamaDouble, ollama_url: str) -> None:
    answer = {"tool_calls": [{"name": "get_ml_signal", "arguments": SIGNAL_ARGS}], "content": ""}
    fresh.queue(Reply(content=json.dumps(answer)))
    model = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="json")).bind_tools(TOOLS)
    history: list[BaseMessage] = [
        SystemMessage(SYSTEM_PROMPT), HumanMessage("portfolio?"),
        AIMessage("", tool_calls=[{"name": "get_portfolio", "args": {}, "id": "c0"}]),
        ToolMessage('{"balance": 10000}', tool_call_id="c0", name="get_portfolio"),
        HumanMessage("y la señal?"),
    ]  # fmt: skip
    reply = await model.ainvoke(history)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_ml_signal", SIGNAL_ARGS)]
    assert reply.tool_calls[0]["id"]  # ids are minted so ToolMessages can refer to them
    sent = fresh.requests[-1]
    assert not sent.get("tools") and sent["format"] == tool_call_schema(["get_ml_signal", "get_portfolio"])
    assert [m["role"] for m in sent["messages"]] == ["system", "system", "user", "assistant", "user", "user"]
    assert (
        sent["messages"][0]["content"] == SYSTEM_PROMPT and "get_ml_signal" in sent["messages"][1]["content"]
    )
    assert json.loads(sent["messages"][3]["content"])["tool_calls"] == [
        {"name": "get_portfolio", "arguments": {}}
    ]
    assert sent["messages"][4]["content"].startswith("Tool result (get_portfolio)")


async def test_json_mode_past_the_tool_limit_keeps_the_prompt_and_allows_no_tool_call(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    """The reason node's last call past `context.max_tool_rounds` has no tools bound: in JSON mode it still
    sends the JSON instructions and tool list where the calls before it had them (the same messages, so
    Ollama's KV-cache prefix holds), with a `format` whose `tool_calls` must stay empty."""
    call = {"tool_calls": [{"name": "get_portfolio", "arguments": {}}], "content": ""}
    fresh.queue(Reply(content=json.dumps(call)),
                Reply(content=json.dumps({"tool_calls": [], "content": "Balance 10000."})))  # fmt: skip
    model = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="json"))
    history: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT), HumanMessage("¿Cómo está mi cuenta?")]
    first = await model.bind_tools(TOOLS).ainvoke(history)
    assert [c["name"] for c in first.tool_calls] == ["get_portfolio"]
    last = await model.ainvoke(history)
    assert last.content == "Balance 10000." and last.tool_calls == []
    with_tools, without = fresh.requests[-2:]
    assert not without.get("tools") and without["messages"] == with_tools["messages"]
    assert "## Tool calling (JSON)" in without["messages"][1]["content"]
    assert with_tools["format"] == tool_call_schema(["get_ml_signal", "get_portfolio"])
    assert without["format"] == tool_call_schema(["get_ml_signal", "get_portfolio"], calls=False)
    assert without["format"]["properties"]["tool_calls"]["maxItems"] == 0


async def test_json_mode_plain_answer_and_streaming(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content=json.dumps({"tool_calls": [], "content": "Esperar: confianza 55%."})),
                Reply(content=json.dumps({"tool_calls": [{"name": "get_portfolio", "arguments": {}}],
                                          "content": ""})))  # fmt: skip
    model = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="json")).bind_tools(TOOLS)
    reply = await model.ainvoke([HumanMessage("¿entro?")])
    assert reply.content == "Esperar: confianza 55%." and reply.tool_calls == []
    chunks = [c async for c in model.astream([HumanMessage("portfolio")])]
    calls = [c for chunk in chunks if isinstance(chunk, AIMessageChunk) for c in chunk.tool_call_chunks]
    assert [c["name"] for c in calls] == ["get_portfolio"] and json.loads(calls[0]["args"] or "") == {}


async def test_static_system_prompt_is_byte_identical_across_turns(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    fresh.queue(Reply(content="uno"), Reply(content="dos"))
    model = build_chat_model(cfg(ollama_url)).bind_tools(TOOLS)
    limits = RiskSettings.model_validate({})
    turns = [({"current_price": 4400.5}, datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
             ({"current_price": 4412.0}, datetime(2026, 3, 2, 8, 5, tzinfo=UTC))]  # fmt: skip
    for market, now in turns:
        live = live_context(market, {"balance": 10000, "equity": 10000}, limits, now)
        await model.ainvoke([SystemMessage(SYSTEM_PROMPT), HumanMessage("hola"), SystemMessage(live)])
    first, second = (r["messages"] for r in fresh.requests[-2:])
    assert first[0] == second[0] and first[0]["content"] == SYSTEM_PROMPT
    assert first[-1] != second[-1] and "4412.0" in second[-1]["content"]


async def test_model_without_tools_forced_native_is_a_clear_error(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    model = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="native")).bind_tools(TOOLS)
    with pytest.raises(ModelUnavailable, match=r"does not support native tool calling; set llm\.tool_mode"):
        await model.ainvoke([HumanMessage("hola")])


async def test_missing_model_and_server_down(fresh: OllamaDouble, ollama_url: str) -> None:
    with pytest.raises(ModelUnavailable, match=r"model 'nope:1b' is not installed .* `ollama pull nope:1b`"):
        await build_chat_model(cfg(ollama_url, model="nope:1b")).ainvoke([HumanMessage("hola")])
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelUnavailable, match="not reachable"):
        await build_chat_model(cfg(down)).ainvoke([HumanMessage("hola")])
    assert await model_status(cfg(down)) == "down"
    assert await model_status(cfg(ollama_url, model="nope:1b")) == "model_missing"
    assert await model_status(cfg(ollama_url)) == "ok"


async def test_slow_answer_beyond_the_timeout(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content="tarde", delay_s=1.0))
    model = build_chat_model(cfg(ollama_url, request_timeout=0.2))
    with pytest.raises(ModelUnavailable, match="did not answer within the timeout"):
        await model.ainvoke([HumanMessage("hola")])


async def test_detect_tool_mode_auto_and_override(fresh: OllamaDouble, ollama_url: str) -> None:
    assert await detect_tool_mode(cfg(ollama_url, model=NATIVE)) == "native"
    assert await detect_tool_mode(cfg(ollama_url, model=PLAIN)) == "json"
    assert fresh.show_requests[-1] == {"model": PLAIN}
    asked = len(fresh.show_requests)
    assert await detect_tool_mode(cfg(ollama_url, model=PLAIN, tool_mode="native")) == "native"
    assert await detect_tool_mode(cfg(ollama_url, model=NATIVE, tool_mode="json")) == "json"
    assert len(fresh.show_requests) == asked  # an override never asks the server
    with pytest.raises(ModelUnavailable, match="not installed"):
        await detect_tool_mode(cfg(ollama_url, model="nope:1b"))


async def test_auto_mode_model_picks_json_for_a_model_without_tools(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    fresh.queue(Reply(content=json.dumps({"tool_calls": [{"name": "get_portfolio", "arguments": {}}],
                                          "content": ""})))  # fmt: skip
    model = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="auto")).bind_tools(TOOLS)
    reply = await model.ainvoke([HumanMessage("portfolio")])
    assert [c["name"] for c in reply.tool_calls] == ["get_portfolio"] and "format" in fresh.requests[-1]
