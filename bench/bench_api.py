"""Streaming with a slow scripted model: the SSE stream starts long before the answer is complete.

Usage: .venv/bin/python -m bench.bench_api [--runs 30] [--token-delay 0.02]
Starts a private embedded Redis Stack and the real app under uvicorn in this process. The scripted model
sleeps `token-delay` seconds per word (a stand-in for generation speed), so the gap between the first event
and the final one shows that the stream starts before the answer is complete; a slash command (/portfolio,
no model) shows the server's own floor. The copilot against the stock stack with the real ChatOllama is
bench/bench_stack.py.
"""

from __future__ import annotations

import argparse
import time

import httpx

from bench.harness import private_app
from bench.table import p50, p95, print_table
from graph.model.fake import ScriptedChatModel

ANSWER = " ".join(["palabra"] * 40)


def timed_stream(client: httpx.Client, session: str) -> tuple[float, float, float]:
    start = time.perf_counter()
    first_event = first_token = 0.0
    with client.stream("POST", "/api/chat/stream", json={"message": "hola", "session_id": session}) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                now = time.perf_counter() - start
                first_event = first_event or now
                if line == "event: token":
                    first_token = first_token or now
    return first_event, first_token, time.perf_counter() - start


def row(name: str, seconds: list[float]) -> list[object]:
    ms = [v * 1000 for v in seconds]
    return [name, f"{p50(ms):.1f} ms", f"{p95(ms):.1f} ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args()
    model = ScriptedChatModel(replies=[ANSWER], delay=args.token_delay)  # streams ANSWER word by word
    with private_app(model) as url, httpx.Client(base_url=url, timeout=60) as client:
        run(client, args.runs)


def run(client: httpx.Client, runs: int) -> None:
    firsts, tokens, totals, slash = [], [], [], []
    for i in range(runs):
        first, token, total = timed_stream(client, f"bench-{i}")
        firsts.append(first)
        tokens.append(token)
        totals.append(total)
        start = time.perf_counter()
        client.post("/api/chat", json={"message": "/portfolio", "session_id": f"bench-slash-{i}"})
        slash.append(time.perf_counter() - start)
    rows = [
        row("/api/chat/stream first SSE event", firsts),
        row("first token", tokens),
        row("final event", totals),
        row("/api/chat with /portfolio", slash),
    ]
    print_table(["measure", "median", "p95"], rows)


if __name__ == "__main__":
    main()
