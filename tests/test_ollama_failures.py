"""Model failures against an Ollama-speaking server scripted to misbehave (tests/support/ollama_double.py).

Each failure has a category and a clear message (never a raw JSONDecodeError), a cut or length-limited stream
is never taken for an answer, JSON mode streams its text and gives a bad tool call back to the model once,
and the outcomes feed the health check's window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessageChunk, HumanMessage

from config import Settings, load_settings
from graph.model.client import build_chat_model
from graph.model.errors import (
    ChatOutcomes,
    FailureCategory,
    ModelUnavailable,
    recent_chat_failure,
    reset_chat_outcomes,
)
from graph.model.json_mode import JsonReplyParser
from graph.model.ollama_server import model_status
from server.in_thread import free_port
from tests.support.ollama import NATIVE, PLAIN, TOOLS
from tests.support.ollama_double import OllamaDouble, Reply

ANSWER = "La señal del oro es LONG con 72 % de confianza; el stop va bajo 4380."
Cat = FailureCategory


@pytest.fixture
def fresh(ollama_double: OllamaDouble) -> Iterator[OllamaDouble]:
    ollama_double.replies.clear()
    ollama_double.requests.clear()
    reset_chat_outcomes()
    yield ollama_double
    reset_chat_outcomes()


def cfg(base_url: str, model: str = NATIVE, **llm: Any) -> Settings:
    return load_settings(
        llm={"model": model, "base_url": base_url, "request_timeout": 0.5, **llm},
        inference={"max_tokens": 512},
        logging={"file": None},
    )


def as_json(content: str = "", calls: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"tool_calls": calls or [], "content": content}, ensure_ascii=False)


async def collect(model: Any, question: str = "hola") -> list[BaseMessageChunk]:
    return [chunk async for chunk in model.astream([HumanMessage(question)])]


FAILURES = [
    pytest.param(Reply(content=ANSWER, cut="no_done"), Cat.TRUNCATED, "without the final `done`",
                 id="no-done"),
    pytest.param(Reply(content=ANSWER, cut="mid_line"), Cat.TRUNCATED, "stopped inside a line",
                 id="mid-line"),
    pytest.param(Reply(content=ANSWER, cut="drop"), Cat.TRUNCATED, "dropped the connection", id="dropped"),
    pytest.param(Reply(content=ANSWER, done_reason="length"), Cat.TRUNCATED, "length limit (512 tokens",
                 id="length"),
    pytest.param(Reply(content=ANSWER, stream_error="an error was encountered while running the model: EOF"),
                 Cat.TRUNCATED, "running the model: EOF", id="error-line"),
    pytest.param(Reply(error="server busy, please try again.  maximum pending requests exceeded", status=503),
                 Cat.OVERLOADED, "overloaded (HTTP 503: server busy", id="busy-503"),
    pytest.param(Reply(error=f"model '{NATIVE}' not found", status=404), Cat.MODEL_MISSING,
                 f"`ollama pull {NATIVE}`", id="not-found-404"),
    pytest.param(Reply(content=ANSWER, delay_s=1.0), Cat.SLOW, "did not answer within the timeout (0.5 s",
                 id="slow-first-byte"),
    pytest.param(Reply(content=ANSWER, interval_s=1.0), Cat.SLOW, "did not answer within the timeout",
                 id="stalled-mid-stream"),
    pytest.param(Reply(error="timed out waiting for llama runner to start - progress 0.00", status=500),
                 Cat.SLOW, "may still be loading the model", id="runner-start"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "category", "words"), FAILURES)
@pytest.mark.parametrize("streaming", [False, True], ids=["invoke", "stream"])
async def test_each_failure_has_a_category_and_a_clear_message(
    fresh: OllamaDouble, ollama_url: str, reply: Reply, category: Cat, words: str, streaming: bool
) -> None:
    fresh.queue(reply)
    settings = cfg(ollama_url)
    model = build_chat_model(settings)
    with pytest.raises(ModelUnavailable) as caught:
        if streaming:
            await collect(model)
        else:
            await model.ainvoke([HumanMessage("hola")])
    assert caught.value.category is category, caught.value
    assert words in str(caught.value)
    assert "JSONDecodeError" not in str(caught.value) and "Traceback" not in str(caught.value)
    recorded = recent_chat_failure(settings)  # the health window saw it
    assert recorded is not None and recorded.category is category


async def test_server_down_and_missing_model(fresh: OllamaDouble, ollama_url: str) -> None:
    down = cfg(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelUnavailable, match="not reachable") as caught:
        await build_chat_model(down).ainvoke([HumanMessage("hola")])
    assert caught.value.category is Cat.DOWN
    with pytest.raises(ModelUnavailable, match="ollama pull nope:1b") as missing:
        await build_chat_model(cfg(ollama_url, model="nope:1b")).ainvoke([HumanMessage("hola")])
    assert missing.value.category is Cat.MODEL_MISSING
    native_only = build_chat_model(cfg(ollama_url, model=PLAIN, tool_mode="native")).bind_tools(TOOLS)
    with pytest.raises(ModelUnavailable, match="does not support native tool calling") as no_tools:
        await native_only.ainvoke([HumanMessage("hola")])
    assert no_tools.value.category is Cat.MODEL_MISSING


async def test_a_whole_answer_is_still_an_answer(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content=ANSWER, chunks=5), Reply(content=ANSWER, chunks=5))
    settings = cfg(ollama_url)
    reply = await build_chat_model(settings).ainvoke([HumanMessage("hola")])
    assert reply.content == ANSWER and reply.response_metadata["done_reason"] == "stop"
    assert "".join(c.text for c in await collect(build_chat_model(settings))) == ANSWER
    assert recent_chat_failure(settings) is None


# ---------------------------------------------------------------- JSON mode


def json_model(base_url: str) -> Any:
    return build_chat_model(cfg(base_url, model=PLAIN, tool_mode="json")).bind_tools(TOOLS)


async def test_json_mode_streams_the_answer_text_as_it_is_generated(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    fresh.queue(Reply(content=as_json(ANSWER), chunks=12))
    chunks = await collect(json_model(ollama_url))
    texts = [c.text for c in chunks if c.text]
    assert "".join(texts) == ANSWER  # the decoded `content`, never the JSON around it
    assert len(texts) >= 6 and all(len(t) < len(ANSWER) for t in texts)
    assert not any("tool_calls" in t or "{" in t for t in texts)
    assert any(c.response_metadata.get("done_reason") == "stop" for c in chunks)


async def test_json_mode_tool_calls_are_emitted_once_complete(fresh: OllamaDouble, ollama_url: str) -> None:
    call = {"name": "get_ml_signal", "arguments": {"symbol": "XAUUSD", "timeframe": "15m"}}
    fresh.queue(Reply(content=as_json("", [call, {"name": "get_portfolio", "arguments": {}}]), chunks=9))
    chunks = await collect(json_model(ollama_url))
    with_calls = [c for c in chunks if isinstance(c, AIMessageChunk) and c.tool_call_chunks]
    assert len(with_calls) == 1  # both calls together, when the array closed; no partial arguments
    calls = with_calls[0].tool_call_chunks
    assert [(c["name"], json.loads(c["args"] or "")) for c in calls] == [
        ("get_ml_signal", call["arguments"]),
        ("get_portfolio", {}),
    ]
    assert not any(c.text for c in chunks)


async def test_json_mode_escapes_split_across_chunks(fresh: OllamaDouble, ollama_url: str) -> None:
    text = 'Oro "XAUUSD": ¡compra!\nStop ≤ 4380 😀 \\ fin'
    fresh.queue(Reply(content=json.dumps({"tool_calls": [], "content": text}), chunks=40))  # ASCII escapes
    reply = await json_model(ollama_url).ainvoke([HumanMessage("hola")])
    assert reply.content == text and reply.tool_calls == []


@pytest.mark.parametrize(
    ("bad_call", "told"),
    [
        ({"name": "get_weather", "arguments": {}}, "there is no tool named 'get_weather'"),
        (
            {"name": "get_ml_signal", "arguments": "XAUUSD"},
            "arguments of 'get_ml_signal' must be a JSON object",
        ),
        ({"name": "get_ml_signal", "arguments": ["XAUUSD"]}, "must be a JSON object, not a list"),
    ],
)
async def test_a_bad_tool_call_goes_back_to_the_model_once(
    fresh: OllamaDouble, ollama_url: str, bad_call: dict[str, Any], told: str
) -> None:
    good = {"name": "get_portfolio", "arguments": {}}
    fresh.queue(Reply(content=as_json("", [bad_call])), Reply(content=as_json("", [good])))
    reply = await json_model(ollama_url).ainvoke([HumanMessage("portfolio")])
    assert [c["name"] for c in reply.tool_calls] == ["get_portfolio"]
    first, second = fresh.requests
    assert second["messages"][: len(first["messages"])] == first["messages"]
    said, error = second["messages"][-2:]
    assert said["role"] == "assistant" and json.loads(said["content"])["tool_calls"] == [bad_call]
    assert error["role"] == "user" and told in error["content"] and "get_portfolio" in error["content"]


async def test_a_second_bad_tool_call_becomes_a_clear_message(fresh: OllamaDouble, ollama_url: str) -> None:
    bad = Reply(content=as_json("", [{"name": "get_weather", "arguments": {}}]))
    fresh.queue(bad, bad, Reply(content=as_json("never asked")))
    settings = cfg(ollama_url, model=PLAIN, tool_mode="json")
    with pytest.raises(ModelUnavailable, match="no tool named 'get_weather'") as caught:
        await collect(build_chat_model(settings).bind_tools(TOOLS))
    assert caught.value.category is Cat.BAD_REPLY and "also after it was told" in str(caught.value)
    assert len(fresh.requests) == 2 and len(fresh.replies) == 1  # bounded: one retry, then the trader
    failure = recent_chat_failure(settings)
    assert failure is not None and failure.category is Cat.BAD_REPLY


@pytest.mark.parametrize(
    ("reply", "category"),
    [
        (Reply(content=as_json(ANSWER), done_reason="length"), Cat.TRUNCATED),
        (Reply(content=as_json(ANSWER), cut="no_done"), Cat.TRUNCATED),
        (Reply(content=as_json(ANSWER), cut="mid_line"), Cat.TRUNCATED),
        (Reply(content=as_json(ANSWER)[:-8]), Cat.BAD_REPLY),  # "done" but the JSON object never closed
    ],
)
async def test_json_mode_truncated_json_is_never_an_answer(
    fresh: OllamaDouble, ollama_url: str, reply: Reply, category: Cat
) -> None:
    fresh.queue(reply)
    with pytest.raises(ModelUnavailable) as caught:
        await json_model(ollama_url).ainvoke([HumanMessage("hola")])
    assert caught.value.category is category
    assert '"content"' not in str(caught.value) and "{" not in str(caught.value)  # no raw JSON for the trader


async def test_json_mode_invalid_json_before_any_text_is_retried(
    fresh: OllamaDouble, ollama_url: str
) -> None:
    fresh.queue(Reply(content='{"tool_calls": [{"name": "get_portfolio", "arguments": {]}], "content": ""}'),
                Reply(content=as_json("Todo bien.")))  # fmt: skip
    reply = await json_model(ollama_url).ainvoke([HumanMessage("hola")])
    assert reply.content == "Todo bien." and len(fresh.requests) == 2
    assert "not valid JSON" in fresh.requests[-1]["messages"][-1]["content"]


async def test_json_mode_an_empty_reply_is_retried(fresh: OllamaDouble, ollama_url: str) -> None:
    fresh.queue(Reply(content=as_json("")), Reply(content=as_json("Hola, trader.")))
    reply = await json_model(ollama_url).ainvoke([HumanMessage("hola")])
    assert reply.content == "Hola, trader." and len(fresh.requests) == 2
    assert "neither a tool call nor an answer" in fresh.requests[-1]["messages"][-1]["content"]


def test_parser_holds_incomplete_escapes_and_passes_plain_text() -> None:
    parser = JsonReplyParser()
    pieces = ['{"tool_calls": [], "content": "a\\', "u00e9\\ud83d", "\\ude00", ' b"}']
    out = [event for piece in pieces for event in parser.feed(piece)]
    assert out == [("tool_calls", []), ("text", "a"), ("text", "é"), ("text", "😀"), ("text", " b")]
    assert parser.finish() is None
    plain = JsonReplyParser()
    assert plain.feed("Hola, ") + plain.feed("trader") == [("text", "Hola, "), ("text", "trader")]
    assert plain.finish() is None and plain.plain


# ---------------------------------------------------------------- the health window


async def test_model_status_is_failing_while_chats_fail(fresh: OllamaDouble, ollama_url: str) -> None:
    settings = cfg(ollama_url)
    assert await model_status(settings) == "ok"
    fresh.queue(Reply(content=ANSWER, cut="no_done"))
    with pytest.raises(ModelUnavailable):
        await build_chat_model(settings).ainvoke([HumanMessage("hola")])
    assert await model_status(settings) == "failing"  # /api/show answers, chatting does not
    fresh.queue(Reply(content="ok"))
    await build_chat_model(settings).ainvoke([HumanMessage("hola")])
    assert await model_status(settings) == "ok"  # 1 of 2 failed and the last worked


def test_the_window_rule() -> None:
    window = ChatOutcomes(size=5, max_age_s=300)
    cut = ModelUnavailable("cut", Cat.TRUNCATED)
    busy = ModelUnavailable("busy", Cat.OVERLOADED)
    assert window.failing() is None
    for outcome in (None, cut, None):
        window.record(outcome)
    assert window.failing() is None  # 1 of 3, the last one worked
    window.record(busy)
    assert window.failing() is busy  # the last one failed
    window.record(None)
    assert window.failing() is None  # 2 of 5
    mostly = ChatOutcomes(size=5, max_age_s=300)
    for outcome in (None, cut, busy, cut, None):
        mostly.record(outcome)
    assert mostly.failing() is cut  # 3 of the last 5 failed, although the last one worked
    old = ChatOutcomes(size=5, max_age_s=0.0)
    old.record(cut)
    assert old.failing() is None  # too old to count
