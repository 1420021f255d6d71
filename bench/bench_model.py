"""The copilot's requests on a real model vs the stock ReAct agent's: tokens the server re-evaluated, time to
first token.

Usage: .venv/bin/python -m bench.bench_model [--turns 20] [--max-tokens 32]
Starts llama-cpp-python's server on the packaged SmolLM2-135M GGUF (bench/llama_server.py: one process, its
own port, the model's own ChatML template, only the last prompt's KV state kept) behind a recording proxy
(bench/model_proxy.py), then runs the same trader messages through
- the copilot: the real graph, services and Redis checkpointer on a private embedded Redis Stack, with the
  `openai` provider pointed at the proxy (whatever requests its model client really sends), and
- the stock agent: `create_react_agent` + ChatOpenAI on the same server, one tool, the whole history,
one after the other (each agent's session alone on the server, so the KV cache holds its own last prompt).

Per turn, summed over its model requests: prompt tokens sent and re-evaluated (the engine's own log:
prefix-match hit / prompt eval), the turn's new tokens (the messages of a request that were not in the
previous request or its reply, each counted by the server's tokenizer as the ChatML template renders it,
plus the answer header), and the time to the first answer token as the client streams it. Targets (issue
17): re-evaluated ≤ 1.2 × new on ≥ 90 % of turns; time to first token from turn 10 on ≤ half the stock
agent's. The `break` column says where a request's prompt first differs from the previous request's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from bench.baseline import get_portfolio
from bench.bench_prompt import SCRIPT, START
from bench.harness import private_services
from bench.llama_server import MODEL_NAME, EngineLine, LlamaServer, engine_lines, llama_server
from bench.model_proxy import Exchange, Recorder
from bench.table import print_table
from graph.copilot import Copilot
from graph.nodes.reason import MODEL_DOWN, MODEL_UNUSABLE
from server.in_thread import serve_in_thread
from tools.market.clock import ManualClock

REEVAL_LIMIT, REEVAL_SHARE = 1.2, 0.9  # re-evaluated ≤ 1.2 × new tokens on ≥ 90 % of turns
TTFT_FROM_TURN, TTFT_RATIO = 10, 0.5
ANSWER_HEADER = "<|im_start|>assistant\n"
FALLBACKS = [t.split("{")[0] for t in (MODEL_DOWN, MODEL_UNUSABLE)]


@dataclass
class TurnFigures:
    turn: int
    requests: list[Exchange] = field(default_factory=list)
    engine: list[EngineLine] = field(default_factory=list)
    new: int = 0
    ttft_s: float | None = None
    breaks: list[str] = field(default_factory=list)
    error: str | None = None
    refused: int = 0

    @property
    def sent(self) -> int:
        return sum(e.prompt for e in self.engine)

    @property
    def reevaluated(self) -> int:
        return sum(e.evaluated for e in self.engine)

    @property
    def model_ttft_s(self) -> float | None:
        """The model side: from the turn's first request to its first streamed text or tool call."""
        return self.requests[0].ttft_s if self.requests else None

    @property
    def within(self) -> bool:
        return self.reevaluated <= REEVAL_LIMIT * self.new


def _key(message: dict[str, Any]) -> str:
    return json.dumps(
        [message.get("role"), message.get("content") or "", message.get("tool_calls")], sort_keys=True
    )


def _rendered(message: dict[str, Any]) -> str:
    """A message as SmolLM2's template renders it (ChatML, content only)."""
    content = message.get("content") or ""
    if not isinstance(content, str):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return f"<|im_start|>{message.get('role')}\n{content}<|im_end|>\n"


def new_messages(request: Exchange, previous: Exchange | None) -> tuple[list[dict[str, Any]], str]:
    """The messages of `request` that were neither in `previous` nor its reply (counted as a multiset, so a
    repeated question is new again), and where this prompt first differs from the previous one."""
    messages = list(request.body.get("messages") or [])
    if previous is None:
        return messages, "first"
    before = [*(previous.body.get("messages") or []), {"role": "assistant", "content": previous.reply}]
    known = Counter(_key(m) for m in before)
    fresh = []
    for m in messages:
        if known[_key(m)] > 0:
            known[_key(m)] -= 1
        else:
            fresh.append(m)
    at = next((i for i, (a, b) in enumerate(zip(messages, before, strict=False)) if _key(a) != _key(b)), None)
    if at is None:  # one is a prefix of the other
        at = min(len(messages), len(before))
    return fresh, "end" if at >= min(len(before), len(messages)) else f"{at}:{messages[at].get('role')}"


def measure_turn(server: LlamaServer, figures: TurnFigures, previous: Exchange | None, offset: int) -> None:
    """Fill in the engine's lines (waiting for its log to show every request) and the new tokens."""
    deadline = time.monotonic() + 10
    while len(engine_lines(server.since(offset))) < len(figures.requests) and time.monotonic() < deadline:
        time.sleep(0.05)
    figures.engine = engine_lines(server.since(offset))
    for n, request in enumerate(figures.requests):
        fresh, where = new_messages(request, previous)
        if previous is None and n < len(figures.engine):  # a session's first prompt is all new to it
            figures.new += figures.engine[n].prompt
        else:
            figures.new += sum(server.tokenize(_rendered(m)) for m in fresh) + server.tokenize(ANSWER_HEADER)
        figures.breaks.append(where)
        previous = request


async def run_turns(
    server: LlamaServer, recorder: Recorder, turns: int, send: Any, between: Any = None
) -> list[TurnFigures]:
    """`send(message, times)` streams one trader turn, appending the perf_counter time of its first answer
    token to `times` (so a turn that fails after it still has its time to first token)."""
    out: list[TurnFigures] = []
    previous: Exchange | None = None
    for n in range(turns):
        figures, offset, first = TurnFigures(n + 1), server.offset(), len(recorder.exchanges)
        started, times = time.perf_counter(), []
        try:
            await send(SCRIPT[n % len(SCRIPT)][0], times)
        except Exception as exc:  # a failed turn is a row, not the end of the bench
            figures.error = f"{type(exc).__name__}: {exc}"[:120]
        figures.ttft_s = times[0] - started if times else None
        # A request the server refused (e.g. HTTP 422 for a response_format it does not take) never reached
        # the engine.
        figures.requests = [e for e in recorder.exchanges[first:] if e.status == 200]
        figures.refused = len(recorder.exchanges) - first - len(figures.requests)
        measure_turn(server, figures, previous, offset)
        previous = figures.requests[-1] if figures.requests else previous
        out.append(figures)
        if between is not None:
            between(n + 1)
    return out


async def copilot_session(
    server: LlamaServer, recorder: Recorder, url: str, turns: int, max_tokens: int
) -> list[TurnFigures]:
    clock = ManualClock(START)
    # A window cut re-evaluates ~1,500 tokens: minutes when other processes share the 2 cores.
    llm = {"provider": "openai", "base_url": url, "model": MODEL_NAME, "tool_mode": "json", "num_ctx": 8192,
           "request_timeout": 600}  # fmt: skip
    async with private_services(clock, llm=llm, inference={"max_tokens": max_tokens}) as (
        settings,
        _,
        services,
    ):
        async with Copilot.open(settings, services=services) as copilot:
            thread = f"bench-{uuid.uuid4().hex[:6]}"

            async def send(message: str, times: list[float]) -> None:
                async for event in copilot.stream("bench", thread, message):
                    if event["event"] == "token" and not times:
                        times.append(time.perf_counter())
                    elif event["event"] == "error":
                        raise RuntimeError(str((event.get("data") or {}).get("message")))
                    elif event["event"] == "final":
                        said = str((event.get("data") or {}).get("response"))
                        if any(mark in said for mark in FALLBACKS):  # the model failed; the copilot said so
                            raise RuntimeError(said[said.find("The language model") :][:200])

            def tick(n: int) -> None:  # five market minutes per turn, as in bench_prompt
                clock.set(START + timedelta(minutes=5 * n))

            return await run_turns(server, recorder, turns, send, tick)


async def stock_session(
    server: LlamaServer, recorder: Recorder, url: str, turns: int, max_tokens: int
) -> list[TurnFigures]:
    with warnings.catch_warnings():  # moved to langchain.agents in LangGraph 1.0; still the stock one
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

    # max_tokens in extra_body: ChatOpenAI sends its own max_tokens as max_completion_tokens, which
    # llama-cpp-python ignores (unbounded answers); a stock user would not know; the bench must stay short.
    model = ChatOpenAI(
        model=MODEL_NAME, base_url=url, api_key="none", extra_body={"max_tokens": max_tokens}, timeout=600
    )
    agent = create_react_agent(model, [get_portfolio], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}

    async def send(message: str, times: list[float]) -> None:
        stream = agent.astream({"messages": [("user", message)]}, config, stream_mode="messages")
        async for chunk, _ in stream:
            if isinstance(chunk, AIMessageChunk) and chunk.content and not times:
                times.append(time.perf_counter())

    return await run_turns(server, recorder, turns, send)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def report(copilot: list[TurnFigures], stock: list[TurnFigures]) -> None:
    headers = ["turn", "copilot req", "sent", "re-eval", "new", "re-eval/new", "1st token", "shown", "break",
               "stock req", "sent", "re-eval", "new", "1st token", "shown"]  # fmt: skip
    rows = []
    for c, s in zip(copilot, stock, strict=True):
        ratio = f"{c.reevaluated / c.new:.2f}" if c.new else "–"
        shown = _s(c.ttft_s) + (" ERR" if c.error else "")
        rows.append([c.turn, len(c.requests), c.sent, c.reevaluated, c.new, ratio, _s(c.model_ttft_s), shown,
                     " ".join(c.breaks), len(s.requests), s.sent, s.reevaluated, s.new, _s(s.model_ttft_s),
                     _s(s.ttft_s)])  # fmt: skip
    print_table(headers, rows)
    for name, turns in (("copilot", copilot), ("stock agent", stock)):
        within = sum(t.within for t in turns)
        failed = Counter(t.error for t in turns if t.error)
        errors = "; ".join(f"{n} × {error}" for error, n in failed.most_common())
        refused = sum(t.refused for t in turns)
        print(f"{name}: re-evaluated ≤ {REEVAL_LIMIT} × new tokens on {within}/{len(turns)} turns "
              f"({within / len(turns):.0%}; target ≥ {REEVAL_SHARE:.0%}: "
              f"{'met' if within >= REEVAL_SHARE * len(turns) else 'NOT met'}); "
              f"tokens sent {sum(t.sent for t in turns)}, re-evaluated {sum(t.reevaluated for t in turns)}, "
              f"new {sum(t.new for t in turns)}; requests {sum(len(t.requests) for t in turns)}"
              + (f" (+{refused} refused by the server)" if refused else "")
              + (f"; failed turns: {errors}" if errors else ""))  # fmt: skip
    for what, pick in (("model's first token", "model_ttft_s"), ("first token shown", "ttft_s")):
        late = [(getattr(c, pick), getattr(s, pick)) for c, s in zip(copilot, stock, strict=True)
                if c.turn >= TTFT_FROM_TURN]  # fmt: skip
        mine = [c for c, _ in late if c is not None]
        theirs = [s for _, s in late if s is not None]
        if not (mine and theirs):
            print(f"{what}, turns {TTFT_FROM_TURN}–{len(copilot)}: copilot {len(mine)}, stock agent "
                  f"{len(theirs)} turns with one: no ratio")  # fmt: skip
            continue
        ratio = statistics.median(mine) / statistics.median(theirs)
        print(f"{what}, turns {TTFT_FROM_TURN}–{len(copilot)}, median: copilot "
              f"{statistics.median(mine):.2f} s ({len(mine)} turns), stock agent "
              f"{statistics.median(theirs):.2f} s ({len(theirs)}), ratio "
              f"{ratio:.2f} (target ≤ {TTFT_RATIO}: {'met' if ratio <= TTFT_RATIO else 'NOT met'})"
              )  # fmt: skip


async def run(
    turns: int, max_tokens: int, log: Path, dump: Path | None = None
) -> tuple[list[TurnFigures], list[TurnFigures]]:
    with llama_server(log) as server:
        recorder = Recorder(server.url.removesuffix("/v1"))
        with serve_in_thread(recorder.app()) as proxy:
            url = f"{proxy}/v1"
            copilot = await copilot_session(server, recorder, url, turns, max_tokens)
            stock = await stock_session(server, recorder, url, turns, max_tokens)
    if dump is not None:  # every request body and reply, one JSON object a line, to see what changed
        with dump.open("w", encoding="utf-8") as out:
            for e in recorder.exchanges:
                record = {"status": e.status, "ttft_s": e.ttft_s, "body": e.body, "reply": e.reply}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return copilot, stock


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64, help="answer bound per request (short turns)")
    parser.add_argument("--log", help="keep the server's log here (default: a temporary file)")
    parser.add_argument("--dump", help="write every request body and reply here (JSON lines)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(args.log) if args.log else Path(tmp) / "llama_server.log"
        copilot, stock = asyncio.run(
            run(args.turns, args.max_tokens, log, Path(args.dump) if args.dump else None)
        )
    print(f"model: {MODEL_NAME} on llama-cpp-python's server (CPU), {args.turns} turns, "
          f"max_tokens {args.max_tokens}")  # fmt: skip
    report(copilot, stock)


if __name__ == "__main__":
    main()
