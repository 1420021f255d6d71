"""How Ollama renders the copilot's requests over a 20-turn session, and how much of each prompt it can reuse.

Usage: .venv/bin/python -m bench.bench_prompt [--turns 20] [--legacy]
Starts a private embedded Redis Stack and runs a scripted session (questions with tool rounds, plain
questions, slash commands) through the real graph, Redis checkpointer and services. The scripted model
records every prompt; each is converted to Ollama's wire format by langchain_ollama's own converter (JSON mode
via the model client) and rendered with bench/ollama_render.py for llama3.1, the copilot's derived
llama3.1 template (`copilot model install`, "l3.1c") and qwen2.5 (native tools) and llama3 (JSON mode). Per
request: answer header last, live context in the last user turn, tool list present (stock llama3.1 only when
the last message is the trader's), and prefix reuse = the share of the prompt's characters equal to the
previous request's prompt prefix. `--legacy` measures the previous request shape
(system prompt, keep_recent history, live context as a trailing system message) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_ollama import ChatOllama

import graph.nodes.reason as reason
from bench.harness import private_services
from bench.ollama_render import (
    collate,
    ends_with_answer_header,
    render,
    shared_prefix,
    tool_list_present,
)
from graph.copilot import Copilot
from graph.model.fake import ScriptedChatModel, tool_call
from graph.model.json_mode import to_json_mode
from tools.market.clock import ManualClock
from tools.trading_tools import make_tools

CONTEXT_MARK = "## Contexto actual / Current context"
RENDERED = ("llama3.1", "llama3.1-copilot", "qwen2.5", "llama3")
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# The trader's side of the session: (message, tool the model calls first or None). No slash command: after
# one, a session's later tool results are answered without the model (the turn's `slash` flag is not reset).
SCRIPT: list[tuple[str, str | None]] = [
    ("¿Qué dice la señal del oro en 15m?", "get_ml_signal"),
    ("¿Y el análisis de mercado de XAUUSD?", "analyze_market"),
    ("¿Cómo está mi cuenta?", "get_portfolio"),
    ("Explícame la fase AMD actual en pocas palabras.", None),
    ("¿Qué harías con el stop si el precio sube 10 dólares?", None),
    ("Dame las últimas velas de 1h del oro.", "get_market_data"),
    ("¿Conviene esperar a la killzone de Nueva York?", None),
    ("What does the EURUSD signal say?", "get_ml_signal"),
    ("And the GBPUSD analysis?", "analyze_market"),
    ("Summarise the risk limits for me.", None),
]


def answer(messages: list[BaseMessage]) -> AIMessage | str:
    """The scripted model: after a tool result, a ~60-word answer; for a trader message, the scripted tool."""
    last = next(m for m in reversed(messages) if not isinstance(m, SystemMessage))  # --legacy ends on one
    if isinstance(last, ToolMessage):
        return f"Resumen de {last.name}: " + "el precio respeta el rango y el riesgo sigue sin usar. " * 6
    said = str(last.content)
    tool = next((t for q, t in SCRIPT if q == said), None)
    symbol = "EURUSD" if "EURUSD" in said else "GBPUSD" if "GBPUSD" in said else "XAUUSD"
    args: dict[str, dict[str, Any]] = {
        "get_ml_signal": {"symbol": symbol, "timeframe": "15m"},
        "analyze_market": {"symbol": symbol},
        "get_portfolio": {},
        "get_market_data": {"symbol": symbol, "timeframe": "1h", "bars": 12},
    }
    if tool is not None:
        return tool_call(tool, args[tool], f"call_{uuid.uuid4().hex[:10]}")
    return "Respuesta breve: " + "la confianza manda; sin señal clara, esperar es una posición. " * 4


def legacy_prompt(deps: Any, state: Any, with_tools: bool) -> tuple[list[BaseMessage], None]:
    """The request shape before this change, for --legacy: a trailing system message, sliding history."""
    from graph.messages import keep_recent
    from prompts.system import SYSTEM_PROMPT, approx_tokens, live_context, trim_history

    settings = deps.settings
    history = keep_recent(state.get("messages", []), settings.context.max_history)
    live = live_context(state.get("market"), state.get("portfolio"), settings.risk, deps.services.clock.now())
    system, context = SystemMessage(SYSTEM_PROMPT), SystemMessage(live)
    fixed = approx_tokens(system) + approx_tokens(context) + (deps.tool_tokens if with_tools else 0)
    budget = max(settings.llm.num_ctx - settings.inference.max_tokens - fixed, 256)
    return [system, *trim_history(history, budget), context], None


@dataclass
class Row:
    request: int
    turn: int
    last_role: str
    cut: bool
    header: dict[str, bool]
    context: bool
    tools: dict[str, bool | None]
    reuse: dict[str, float]  # share of this prompt equal to the previous prompt's prefix
    kept: dict[str, float]  # share of the previous prompt this one starts with (its KV cache kept)


def wire(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    converted = ChatOllama(model="bench")._convert_messages_to_ollama_messages(messages)
    return [dict(m) for m in converted]


def trader_turn(messages: list[dict[str, Any]]) -> str:
    """The newest trader turn as the template sees it (collated; JSON mode's tool results are user turns)."""
    _, collated = collate(messages)
    turns = [m.content for m in collated if m.role == "user" and not m.content.startswith("Tool result (")]
    return turns[-1] if turns else ""


def first_history_message(messages: list[dict[str, Any]]) -> str:
    """Identifies where the window starts (the first non-system message), to tell the block-cut requests."""
    rest = [m for m in messages if m["role"] != "system"]
    return repr(rest[0]) if rest else ""


def measure(calls: list[tuple[int, list[BaseMessage]]], tool_specs: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    previous: dict[str, str] = {}
    previous_start = None
    for n, (turn, call) in enumerate(calls, 1):
        native = wire(call)
        as_json = wire(to_json_mode(list(call), tool_specs))
        prompts = {
            "llama3.1": render("llama3.1", native, tool_specs),
            "llama3.1-copilot": render("llama3.1-copilot", native, tool_specs),
            "qwen2.5": render("qwen2.5", native, tool_specs),
            "llama3": render("llama3", as_json, []),
        }
        _, collated = collate(native)
        last_role = collated[-1].role if collated else ""
        start = first_history_message(native)
        cut = previous_start is not None and start != previous_start
        previous_start = start
        rows.append(
            Row(
                request=n,
                turn=turn,
                last_role=last_role,
                cut=cut,
                header={t: ends_with_answer_header(t, p) for t, p in prompts.items()},
                context=CONTEXT_MARK in trader_turn(native) and CONTEXT_MARK in trader_turn(as_json),
                tools={
                    "llama3.1": tool_list_present(prompts["llama3.1"], tool_specs)
                    if last_role == "user"
                    else None,
                    "llama3.1-copilot": tool_list_present(prompts["llama3.1-copilot"], tool_specs),
                    "qwen2.5": tool_list_present(prompts["qwen2.5"], tool_specs),
                },
                reuse={
                    t: shared_prefix(previous[t], p) / len(p) if t in previous else float("nan")
                    for t, p in prompts.items()
                },
                kept={
                    t: shared_prefix(previous[t], p) / len(previous[t]) if t in previous else float("nan")
                    for t, p in prompts.items()
                },
            )
        )
        previous = prompts
    return rows


async def session(
    turns: int, legacy: bool
) -> tuple[list[tuple[int, list[BaseMessage]]], list[dict[str, Any]]]:
    if legacy:
        reason.prompt = legacy_prompt  # type: ignore[assignment]
    clock = ManualClock(START)
    async with private_services(clock) as (settings, _redis, services):
        model = ScriptedChatModel(replies=[answer])
        calls: list[tuple[int, list[BaseMessage]]] = []
        async with Copilot.open(settings, services=services, chat_model=model) as copilot:
            for turn in range(turns):
                before = len(model.calls)
                await copilot.chat("bench", "prompt", SCRIPT[turn % len(SCRIPT)][0])
                calls += [(turn + 1, c) for c in model.calls[before:]]
                clock.set(START + timedelta(minutes=5 * (turn + 1)))
                state = await copilot.state("bench", "prompt")
                assert state is not None
        tool_specs = [convert_to_openai_tool(t) for t in make_tools(services)]
    return calls, tool_specs


def report(rows: list[Row], legacy: bool) -> None:
    shape = (
        "legacy (trailing system message, sliding window)" if legacy else "live context in the trader's turn"
    )
    print(f"request shape: {shape}; {len(rows)} model requests")
    print(" req turn last  cut  header(l3.1/l3.1c/q2.5/l3) ctx  tools(l3.1/l3.1c/q2.5)  reuse% l3.1   "
          "l3.1c  qwen2.5  llama3")  # fmt: skip
    for r in rows:
        yes = {True: "y", False: "n", None: "-"}
        head = "/".join(yes[r.header[t]] for t in RENDERED)
        tools = "/".join(yes[r.tools[t]] for t in RENDERED[:3])
        reuse = "  ".join(f"{r.reuse[t] * 100:6.1f}" for t in RENDERED)
        print(f"{r.request:4d} {r.turn:4d} {r.last_role:5s} {'cut' if r.cut else '   '}  {head:^26s} "
              f"{yes[r.context]:^4s} {tools:^22s} {reuse}")  # fmt: skip
    n = len(rows)
    user_last = [r for r in rows if r.last_role == "user"]
    print("answer header last: " + ", ".join(
        f"{t} {sum(r.header[t] for r in rows)}/{n}" for t in RENDERED))  # fmt: skip
    print(f"live context in the last user turn: {sum(r.context for r in rows)}/{n}")
    print(f"tool list present (llama3.1, last message the trader's): "
          f"{sum(bool(r.tools['llama3.1']) for r in user_last)}/{len(user_last)}; every request: "
          f"llama3.1-copilot {sum(bool(r.tools['llama3.1-copilot']) for r in rows)}/{n}, "
          f"qwen2.5 {sum(bool(r.tools['qwen2.5']) for r in rows)}/{n}")  # fmt: skip
    for t in RENDERED:
        steady = [r for r in rows[1:] if not r.cut]
        reuse, kept = [r.reuse[t] for r in steady], [r.kept[t] for r in steady]
        every = [r.reuse[t] for r in rows[1:]]
        pct = {name: (min(v) * 100, statistics.median(v) * 100) for name, v in
               (("reuse", reuse), ("kept", kept), ("every", every))}  # fmt: skip
        print(f"prefix reuse {t:16s}: non-cut requests ({len(steady)}): share of the prompt reused min "
              f"{pct['reuse'][0]:5.1f} % median {pct['reuse'][1]:5.1f} %, share of the previous prompt kept "
              f"min {pct['kept'][0]:5.1f} % median {pct['kept'][1]:5.1f} %; all requests reused min "
              f"{pct['every'][0]:5.1f} % median {pct['every'][1]:5.1f} %; "
              f"cut requests {sum(r.cut for r in rows)}")  # fmt: skip
        for role, what in (("user", "a trader turn"), ("tool", "a tool result")):
            some = [r.reuse[t] for r in steady if r.last_role == role]
            if some:
                print(f"    non-cut requests adding {what}: reused min {min(some) * 100:5.1f} % "
                      f"median {statistics.median(some) * 100:5.1f} % ({len(some)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--legacy", action="store_true", help="measure the previous request shape")
    args = parser.parse_args()
    calls, tool_specs = asyncio.run(session(args.turns, args.legacy))
    report(measure(calls, tool_specs), args.legacy)


if __name__ == "__main__":
    main()
