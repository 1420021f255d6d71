"""The requests as Ollama renders them: tool list, answer header, live context and a growing shared prefix.

bench/ollama_render.py reproduces Ollama's collation and the llama3.1 / llama3 / qwen2.5 chat templates and
the copilot's derived llama3.1 template (`copilot model install`); here the real graph drives the real
ChatOllama against the Ollama double over HTTP, and every recorded request is rendered and checked. The two
llama3.1 templates are also *executed* from their Go text (bench/go_template.py): the same prompts must come.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from bench.ollama_render import (
    LLAMA31_TEMPLATE,
    LLAMA_HEADER,
    collate,
    ends_with_answer_header,
    execute_template,
    render,
    render_request,
    shared_prefix,
    tool_list_present,
)
from config import Settings, load_settings
from graph.copilot import Copilot
from graph.model.client import build_chat_model
from graph.model.ollama_model import COPILOT_TEMPLATE
from prompts import SYSTEM_PROMPT
from prompts.window import LIVE_CONTEXT
from tests.support.graph import USER, WallClock
from tests.support.ollama import NATIVE, PLAIN
from tests.support.ollama_double import OllamaDouble, Reply
from tools.market.clock import ManualClock
from tools.services import Services

MARK = "## Contexto actual / Current context"
TOOL = {"type": "function", "function": {"name": "get_portfolio", "description": "The account.",
                                         "parameters": {"type": "object", "properties": {}}}}  # fmt: skip


def test_the_renderer_follows_ollamas_collation_and_last_message_rules() -> None:
    old = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "¿señal para XAUUSD?"},
           {"role": "system", "content": MARK + "\nprice 1"}]  # fmt: skip
    llama = render("llama3.1", old, [TOOL])
    # Every system message goes to the top block; a trailing one leaves no last user message.
    assert llama.startswith("<|start_header_id|>system<|end_header_id|>\n\nSYS\n\n" + MARK)
    assert llama.endswith("¿señal para XAUUSD?<|eot_id|>") and not tool_list_present(llama, [TOOL])
    assert render("qwen2.5", old, [TOOL]).startswith("<|im_start|>system\nSYS\n\n" + MARK)

    new = [{"role": "system", "content": "SYS"}, {"role": "user", "content": MARK + "\nprice 1"},
           {"role": "user", "content": "¿señal para XAUUSD?"}]  # fmt: skip
    system, collated = collate(new)
    assert system == "SYS" and [m.role for m in collated] == ["system", "user"]
    assert collated[1].content == MARK + "\nprice 1\n\n¿señal para XAUUSD?"  # one user turn
    llama = render("llama3.1", new, [TOOL])
    assert tool_list_present(llama, [TOOL]) and llama.endswith("¿señal para XAUUSD?<|eot_id|>" + LLAMA_HEADER)
    assert ends_with_answer_header("qwen2.5", render("qwen2.5", new, [TOOL]))

    call = {"function": {"name": "get_portfolio", "arguments": {}}}
    rounds = [*new, {"role": "assistant", "content": "", "tool_calls": [call]},
              {"role": "tool", "content": '{"balance": 1}'}]  # fmt: skip
    llama = render("llama3.1", rounds, [TOOL])
    assert llama.endswith('{"balance": 1}<|eot_id|>' + LLAMA_HEADER) and not tool_list_present(llama, [TOOL])
    # Legacy llama3 (JSON mode): triples of system/prompt/response; tool messages are not rendered at all.
    legacy = render(
        "llama3", [*rounds[:3], {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]
    )
    assert legacy.count("<|start_header_id|>system") == 1 and legacy.endswith("Q2<|eot_id|>" + LLAMA_HEADER)
    assert render("llama3", old).endswith(
        "<|eot_id|>" + LLAMA_HEADER + "<|eot_id|><|start_header_id|>system"
        "<|end_header_id|>\n\n" + MARK + "\nprice 1<|eot_id|>" + LLAMA_HEADER
    )


# A scripted session: (trader message, tool the model calls first or None); 20 turns, 12 with a tool round.
SCRIPT: list[tuple[str, str | None]] = [
    ("¿Qué dice la señal del oro en 15m?", "get_ml_signal"),
    ("¿Y el análisis de mercado de XAUUSD?", "analyze_market"),
    ("¿Cómo está mi cuenta?", "get_portfolio"),
    ("Explícame la fase AMD actual.", None),
    ("Dame las últimas velas de 1h del oro.", "get_market_data"),
] * 4
ARGS: dict[str, dict[str, Any]] = {
    "get_ml_signal": {"symbol": "XAUUSD", "timeframe": "15m"},
    "analyze_market": {"symbol": "XAUUSD"},
    "get_portfolio": {},
    "get_market_data": {"symbol": "XAUUSD", "timeframe": "1h", "bars": 12},
}
ANSWER = "El precio respeta el rango; la confianza manda y sin señal clara esperar es una posición. " * 3


@asynccontextmanager
async def ollama_copilot(settings: Settings, services: Services, wall: WallClock, url: str, model: str,
                         ) -> AsyncIterator[Copilot]:  # fmt: skip
    data = settings.model_dump()
    data["llm"] = {**data["llm"], "base_url": url, "model": model, "tool_mode": "auto"}
    tuned = load_settings(**data)
    services.settings = tuned
    async with Copilot.open(
        tuned, services=services, chat_model=build_chat_model(tuned), now=wall
    ) as copilot:
        yield copilot


def replies(tool: str | None, json_mode: bool) -> list[Reply]:
    if json_mode:
        answer = Reply(content=json.dumps({"tool_calls": [], "content": ANSWER}))
        if tool is None:
            return [answer]
        call = {"tool_calls": [{"name": tool, "arguments": ARGS[tool]}], "content": ""}
        return [Reply(content=json.dumps(call)), answer]
    if tool is None:
        return [Reply(content=ANSWER)]
    return [Reply(tool_calls=[{"name": tool, "arguments": ARGS[tool]}]), Reply(content=ANSWER)]


def trader_turn(messages: list[dict[str, Any]]) -> str:
    _, collated = collate(messages)
    turns = [m.content for m in collated if m.role == "user" and not m.content.startswith("Tool result (")]
    return turns[-1] if turns else ""


def window_start(request: dict[str, Any]) -> str:
    return json.dumps(next(m for m in request["messages"] if m["role"] != "system"), sort_keys=True)


Recorded = list[tuple[int, dict[str, Any]]]  # (turn, request body) for each request the double received
SessionRecorder = Callable[..., Awaitable[Recorded]]  # the `record_session` fixture


async def run_session(copilot: Copilot, fake: OllamaDouble, clock: ManualClock, json_mode: bool,
                      turns: int) -> Recorded:  # fmt: skip
    session, recorded = f"render-{uuid.uuid4().hex[:8]}", []
    for turn, (question, tool) in enumerate(SCRIPT[:turns], 1):
        fake.queue(*replies(tool, json_mode))
        before = len(fake.requests)
        result = await copilot.chat(USER, session, question)
        assert result.response == ANSWER and result.tools_used == ([tool] if tool else [])
        recorded += [(turn, r) for r in fake.requests[before:]]
        clock.set(clock.now() + timedelta(minutes=5))
    state = await copilot.state(USER, session)
    assert state is not None
    # The trader's history shows their own words, never the context block.
    said = [m["content"] for m in state.messages if m["role"] == "user"]
    assert said[-1] == SCRIPT[turns - 1][0] and not any(MARK in s for s in said)
    return recorded


@pytest.fixture
def record_session(
    ollama_double: OllamaDouble, ollama_url: str, settings: Settings, services: Services, wall: WallClock,
    clock: ManualClock,
) -> SessionRecorder:  # fmt: skip
    """record_session(model, json_mode, turns): run the scripted session through the real graph and ChatOllama
    on `model`; the requests the Ollama double received."""

    async def record(model: str, json_mode: bool, turns: int) -> Recorded:
        ollama_double.requests.clear()
        async with ollama_copilot(settings, services, wall, ollama_url, model) as copilot:
            return await run_session(copilot, ollama_double, clock, json_mode=json_mode, turns=turns)

    return record


def check(recorded: Recorded, templates: tuple[str, ...], native: bool) -> None:
    previous: dict[str, str] = {}
    previous_start, previous_turn, cuts = "", 0, set()
    for turn, request in recorded:
        messages, tools = request["messages"], request.get("tools") or []
        assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert [m["role"] for m in messages[1:] if m["role"] == "system"] in (
            [],
            ["system"],
        )  # JSON mode's own
        assert messages[-1]["role"] in ("user", "tool")  # nothing after the trader's message or a tool result
        assert MARK in trader_turn(messages), turn  # the live context is inside the newest trader turn
        start = window_start(request)
        cut = bool(previous_start) and start != previous_start
        # Block trimming: the window start moves at a turn's first request, never between the calls of a turn.
        assert not cut or turn != previous_turn, turn
        previous_start, previous_turn = start, turn
        if cut:
            cuts.add(turn)
        for template in templates:
            prompt = render_request(template, request)
            assert ends_with_answer_header(template, prompt), (template, turn)
            if native and template == "llama3.1" and messages[-1]["role"] == "user":
                assert tool_list_present(prompt, tools), turn
            if native and template in ("qwen2.5", "llama3.1-copilot"):
                assert tool_list_present(prompt, tools), turn
            if template in previous and not cut:
                before = previous[template]
                if template == "llama3.1" and before.endswith("<|eot_id|>" + LLAMA_HEADER) and tools:
                    # Llama 3.1 writes the tool list into the last user message only: everything before the
                    # previous request's last user turn is reused.
                    before = before[: before.rfind("<|start_header_id|>user<|end_header_id|>")]
                assert prompt.startswith(before), (template, turn)  # append-only: the whole prefix is reused
            previous[template] = prompt
    assert len(cuts) <= len({t for t, _ in recorded}) // 4, cuts  # a cut every few turns, not every turn


async def test_a_native_session_renders_right_and_grows_append_only(
    record_session: SessionRecorder,
) -> None:
    recorded = await record_session(NATIVE, json_mode=False, turns=20)
    assert len(recorded) == 20 + sum(1 for _, tool in SCRIPT if tool)
    check(recorded, ("llama3.1", "qwen2.5", "llama3.1-copilot"), native=True)


def reuse(prompts: list[str]) -> list[float]:
    """Per request after the first: the share of its prompt that is the previous prompt's prefix (the KV cache
    Ollama keeps from the previous request)."""
    return [shared_prefix(before, now) / len(now) for before, now in pairwise(prompts)]


async def test_the_copilot_template_reuses_the_whole_prefix_with_the_tools_on_every_request(
    record_session: SessionRecorder,
) -> None:
    recorded = await record_session(NATIVE, json_mode=False, turns=20)
    stock, derived = [], []
    for turn, request in recorded:
        messages, tools = request["messages"], request["tools"]
        # The Go text Ollama would execute gives exactly the prompts the renderer describes.
        assert execute_template(LLAMA31_TEMPLATE, messages, tools) == render("llama3.1", messages, tools), (
            turn
        )
        prompt = execute_template(COPILOT_TEMPLATE, messages, tools)
        assert prompt == render("llama3.1-copilot", messages, tools), turn
        assert tool_list_present(prompt, tools) and prompt.endswith(LLAMA_HEADER), turn
        assert prompt.count('{"type":"function"') == len(tools) > 0  # listed once, in the system block
        stock.append(render("llama3.1", messages, tools))
        derived.append(prompt)
    assert len(derived) == 20 + sum(1 for _, tool in SCRIPT if tool)  # a second request after each tool round
    assert statistics.median(reuse(derived)) >= 0.90
    # The stock template rewrites the last user turn (tool list in, then out): a prefix one turn back.
    assert statistics.median(reuse(stock)) < 0.80


async def test_a_json_mode_session_renders_right_with_the_llama3_template(
    record_session: SessionRecorder,
) -> None:
    recorded = await record_session(PLAIN, json_mode=True, turns=10)
    assert all("format" in r and not r.get("tools") for _, r in recorded)
    check(recorded, ("llama3",), native=False)


def test_the_stored_turn_keeps_the_context_it_was_sent_with() -> None:
    from prompts.window import as_sent

    turn = HumanMessage("¿Y ahora?", additional_kwargs={LIVE_CONTEXT: MARK + "\nprice 2"})
    sent = as_sent([turn])
    assert [m.content for m in sent] == [MARK + "\nprice 2", "¿Y ahora?"]
