"""Where the copilot's time to first token goes on the real small model, request by request.

Usage: .venv/bin/python -m bench.ttft_profile DUMP [--from-turn 10] [--reps 2]
DUMP is `bench.bench_model --dump` output (every request body of a run, copilot's then stock agent's). On a
fresh llama-cpp-python server (bench/llama_server.py) each recorded request whose prompt ends in new user
messages is replayed alone: first its prefix (everything up to and including the last assistant message,
`max_tokens` 1, so the KV cache holds what the real run had cached), then the request itself, streamed with
`max_tokens` 8, in each variant:
- copilot `schema`: as sent (`response_format` json_object with the JSON mode's schema: a grammar),
- copilot `json`: `response_format` json_object without a schema (llama.cpp's generic JSON grammar),
- copilot `free`: no `response_format` (no grammar),
- stock: as sent,
- stock + copilot's live context: the stock request with the copilot's live-context message of that turn
  before the trader's words (the copilot's new tokens on the stock agent's shorter prompt).
Per variant, medians over the replayed requests: tokens the engine evaluated, its own prompt eval time
(its log), the time to the first streamed chunk with text, and that time minus the prompt evaluation (what
the grammar and the first sampled token add). Same prompts, same server, interleaved, so the variants share
the machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.llama_server import LlamaServer, engine_lines, llama_server
from bench.table import print_table

MEASURED_MAX_TOKENS = 8


def first_chunk_s(client: httpx.Client, url: str, body: dict[str, Any]) -> float | None:
    """Seconds to the first streamed chunk that carries text or a tool call (None: none came)."""
    started, first = time.perf_counter(), None
    with client.stream("POST", f"{url}/chat/completions", json=body) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if first is not None or not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            delta = choices[0].get("delta") or {}
            if delta.get("content") or delta.get("tool_calls"):
                first = time.perf_counter() - started
    return first


def prefix_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The request up to and including its last assistant message (None when it ends in no user message)."""
    messages = body.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last == len(messages) - 1:
        return None
    return {"model": body["model"], "messages": messages[: last + 1], "max_tokens": 1, "stream": False}


def variants(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    base = {k: v for k, v in body.items() if k not in ("max_completion_tokens", "stream_options")}
    base.update(max_tokens=MEASURED_MAX_TOKENS, stream=True)
    if "response_format" not in body:
        return {"stock": base}
    free = {k: v for k, v in base.items() if k != "response_format"}
    return {"copilot schema": base, "copilot json": {**free, "response_format": {"type": "json_object"}},
            "copilot free": free}  # fmt: skip


def with_live_context(stock: dict[str, Any], copilot: dict[str, Any]) -> dict[str, Any]:
    """The stock agent's request with the copilot's live-context message of the same turn (the user message
    right before the trader's words) before its last message: the copilot's new tokens on the stock agent's
    short prompt, to tell the cost of more tokens from that of a longer prompt."""
    context = copilot["messages"][-2]
    messages = stock["messages"]
    return {**stock, "messages": [*messages[:-1], context, messages[-1]]}


def measure(
    server: LlamaServer, client: httpx.Client, body: dict[str, Any]
) -> tuple[int, float, float | None]:
    offset = server.offset()
    ttft = first_chunk_s(client, server.url, body)
    deadline = time.monotonic() + 10
    while not engine_lines(server.since(offset)) and time.monotonic() < deadline:
        time.sleep(0.05)
    line = engine_lines(server.since(offset))[-1]
    return line.evaluated, line.eval_ms / 1000, ttft


FOLLOW_UPS = (
    "Tool result",
    "Your previous reply could not be used",
)  # the JSON mode's requests within a turn


def turn_firsts(dump: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """Each session's first request of each trader turn, by turn number (a JSON-mode tool result or retry
    within a turn is not a turn's first request), when it has a prefix to replay."""
    copilot: dict[int, dict[str, Any]] = {}
    stock: dict[int, dict[str, Any]] = {}
    for line in dump.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        body = record["body"]
        last = str((body.get("messages") or [{}])[-1].get("content") or "")
        if record["status"] != 200 or last.startswith(FOLLOW_UPS):
            continue
        session = copilot if "response_format" in body else stock
        session[len(session) + 1] = body
    return (
        {n: b for n, b in copilot.items() if prefix_of(b) is not None},
        {n: b for n, b in stock.items() if prefix_of(b) is not None},
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dump")
    parser.add_argument("--from-turn", type=int, default=10, help="replay the turns from this one on")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    copilot, stock = turn_firsts(Path(args.dump))
    turns = sorted(n for n in copilot if n in stock and n >= args.from_turn)
    results: dict[str, list[tuple[int, float, float | None]]] = {}
    with tempfile.TemporaryDirectory() as tmp, llama_server(Path(tmp) / "server.log") as server:
        with httpx.Client(timeout=600) as client:
            for rep in range(args.reps):
                # One session after the other, its turns in order: each prefix extends the one before, as
                # in the real run (the server keeps only the last prompt's KV state).
                for session in (copilot, stock):
                    for n in turns:
                        body = session[n]
                        tried = variants(body)
                        if session is stock:
                            tried["stock + copilot's live context"] = with_live_context(
                                tried["stock"], copilot[n]
                            )
                        for name, variant in tried.items():
                            prefix = prefix_of(body)
                            assert prefix is not None
                            client.post(f"{server.url}/chat/completions", json=prefix).raise_for_status()
                            results.setdefault(name, []).append(measure(server, client, variant))
                    print(f"rep {rep + 1}: {'copilot' if session is copilot else 'stock'} done", flush=True)
    print(f"turns replayed: {turns} ({args.reps} times each)")
    rows = []
    for name, got in results.items():
        ttfts = [t for _, _, t in got if t is not None]
        extra = [t - e for _, e, t in got if t is not None]
        rows.append([name, len(got), statistics.median(n for n, _, _ in got),
                     f"{statistics.median(e for _, e, _ in got):.2f} s",
                     f"{statistics.median(e / n for n, e, _ in got) * 1000:.1f} ms",
                     f"{statistics.median(ttfts):.2f} s" if ttfts else "–",
                     f"{statistics.median(extra):.2f} s" if extra else "–"])  # fmt: skip
    print_table(["variant", "requests", "evaluated tokens", "prompt eval", "per token", "first text chunk",
                 "first chunk − prompt eval"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
