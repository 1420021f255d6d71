"""Turn latency vs turn number on the real Redis with a scripted model: does a long chat get slower?

Usage: .venv/bin/python -m bench.bench_checkpoint [--turns 200] [--durability sync|async|exit]
Starts a private embedded Redis Stack, runs one thread of `turns` chat turns (each a tool round trip:
model -> get_portfolio -> model) through the real graph and AsyncRedisSaver, prints latency per block.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

from langchain_core.messages import BaseMessage

import graph.copilot as copilot_module
from bench.harness import private_services
from bench.table import p50, p95, print_table
from graph.copilot import Copilot
from graph.fake_model import ScriptedChatModel, tool_call
from tools.market.clock import ManualClock


def reply(messages: list[BaseMessage]) -> object:
    # Alternate: a tool call, then a 60-word answer once the tool result is in.
    if type(messages[-2]).__name__ == "ToolMessage":
        return "Gold holds above the weekly open; " + "the portfolio is flat and risk is unused. " * 8
    return tool_call("get_portfolio", {}, f"call_{uuid.uuid4().hex[:8]}")


async def run(turns: int, durability: str) -> None:
    copilot_module.DURABILITY_CHAT = durability  # type: ignore[assignment]
    clock = ManualClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    async with private_services(clock) as (settings, redis, services):
        model = ScriptedChatModel(replies=[reply])
        latencies: list[float] = []
        async with Copilot.open(settings, services=services, chat_model=model) as copilot:
            for turn in range(turns):
                start = time.perf_counter()
                await copilot.chat("bench", "s1", f"turn {turn}: how is my account?")
                latencies.append((time.perf_counter() - start) * 1000)
            state = await copilot.state("bench", "s1")
            stored = len(state.messages) if state else 0
        keys = await redis.dbsize()
        memory = (await redis.info("memory"))["used_memory_human"]
    print(f"durability={durability} turns={turns} stored_messages={stored} redis_keys={keys} memory={memory}")
    block = max(turns // 10, 1)
    rows = []
    for i in range(0, turns, block):
        chunk = latencies[i : i + block]
        rows.append([f"{i + 1}–{i + len(chunk)}", f"{p50(chunk):.1f} ms", f"{p95(chunk):.1f} ms"])
    print_table(["turns", "median", "p95"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--durability", choices=["sync", "async", "exit"], default="exit")
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.durability))


if __name__ == "__main__":
    main()
