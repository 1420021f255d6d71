"""Turn latency vs turn number on the real Redis with a scripted model: does a long chat get slower?

Usage: .venv/bin/python -m bench.bench_checkpoint [--turns 200] [--durability exit] [--keep-last 20]
Starts a private embedded Redis Stack, runs one thread of `turns` chat turns (each a tool round trip:
model -> get_portfolio -> model) through the real graph and AsyncRedisSaver, prints latency per block and
the session's Redis footprint (keys and their MEMORY USAGE sum, as bench_stack counts it); `--keep-last`
is settings.checkpoints.keep_last (0 = no pruning, the behaviour before it existed). Also where the bytes
of the newest checkpoint go: its stored messages per kind, and the live-context text among them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.messages.base import message_to_dict

import graph.copilot as copilot_module
from bench.harness import private_services
from bench.table import p50, p95, print_table
from graph.copilot import Copilot
from graph.model.fake import ScriptedChatModel, tool_call
from tools.market.clock import ManualClock


def reply(messages: list[BaseMessage]) -> object:
    # Alternate: a tool call, then a 60-word answer once the tool result is in. (Until the live context moved
    # into the trader's turn the last message was that context; since then [-2] was the call, so every turn
    # ran all max_tool_rounds rounds.)
    if type(messages[-1]).__name__ == "ToolMessage":
        return "Gold holds above the weekly open; " + "the portfolio is flat and risk is unused. " * 8
    return tool_call("get_portfolio", {}, f"call_{uuid.uuid4().hex[:8]}")


async def run(turns: int, durability: str, keep_last: int) -> tuple[int, int]:
    copilot_module.DURABILITY_CHAT = durability  # type: ignore[assignment]
    clock = ManualClock(datetime(2026, 3, 2, 10, tzinfo=UTC))
    checkpoints = {"keep_last": keep_last}
    async with private_services(clock, checkpoints=checkpoints) as (settings, redis, services):
        model = ScriptedChatModel(replies=[reply])
        latencies: list[float] = []
        async with Copilot.open(settings, services=services, chat_model=model) as copilot:
            for turn in range(turns):
                start = time.perf_counter()
                await copilot.chat("bench", "s1", f"turn {turn}: how is my account?")
                latencies.append((time.perf_counter() - start) * 1000)
            state = await copilot.state("bench", "s1")
            stored = len(state.messages) if state else 0
            snapshot = await copilot.graph.aget_state(copilot._config("bench", "s1"))
            breakdown(snapshot.values)
        keys = [k async for k in redis.scan_iter(count=1000)]
        size = sum([int(await redis.memory_usage(k, samples=0) or 0) for k in keys])
        memory = (await redis.info("memory"))["used_memory_human"]
    print(
        f"durability={durability} keep_last={keep_last} turns={turns} stored_messages={stored} "
        f"redis_keys={len(keys)} keys_bytes={size / 1e6:.2f} MB used_memory={memory}"
    )
    block = max(turns // 10, 1)
    rows = []
    for i in range(0, turns, block):
        chunk = latencies[i : i + block]
        rows.append([f"{i + 1}–{i + len(chunk)}", f"{p50(chunk):.1f} ms", f"{p95(chunk):.1f} ms"])
    print_table(["turns", "median", "p95"], rows)
    return len(keys), size


def breakdown(values: dict[str, Any]) -> None:
    """The newest checkpoint's state as JSON bytes: its messages per kind, the live-context text among them
    (pinned inline on the trader's messages, or only a reference to its text stored outside), and the other
    channels that are not empty."""
    per_kind: dict[str, list[int]] = {}
    live = 0
    for message in values.get("messages", []):
        size = len(json.dumps(message_to_dict(message), default=str).encode())
        per_kind.setdefault(message.type, []).append(size)
        text = message.additional_kwargs.get("live_context")
        live += len(json.dumps(text).encode()) if text else 0
    others = {k: len(json.dumps(v, default=str).encode()) for k, v in values.items() if k != "messages" and v}
    total = sum(sum(v) for v in per_kind.values()) + sum(others.values())
    rows = [[f"messages: {k}", str(len(v)), f"{sum(v) / 1e3:.1f} KB"] for k, v in per_kind.items()]
    rows.append(["of which live-context text", "", f"{live / 1e3:.1f} KB"])
    rows += [[k, "", f"{v / 1e3:.1f} KB"] for k, v in others.items()]
    rows = [[*r, f"{100 * float(r[2].split()[0]) * 1e3 / total:.0f} %"] for r in rows]
    print_table(["newest checkpoint's state", "count", "JSON", "share"], rows)


async def compare(turns: int, keep_last: int) -> None:
    """`make bench`: the session's footprint without pruning (as before it existed) and with it."""
    before = await run(turns, "exit", 0)
    after = await run(turns, "exit", keep_last)
    print(f"\nRedis per {turns}-turn session (scripted model, one get_portfolio round per turn):")
    print_table(
        ["figure", "no pruning (keep_last 0)", f"keep_last {keep_last}", "target", "met?"],
        [
            [
                "MB",
                f"{before[1] / 1e6:.2f}",
                f"{after[1] / 1e6:.2f}",
                "≤ 1 MB",
                "yes" if after[1] <= 1e6 else "NO",
            ],
            ["keys", str(before[0]), str(after[0]), "≤ 50", "yes" if after[0] <= 50 else "NO"],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--durability", choices=["sync", "async", "exit"], default="exit")
    parser.add_argument("--keep-last", type=int, default=20)
    parser.add_argument("--compare", action="store_true", help="keep_last 0 vs --keep-last, with the targets")
    args = parser.parse_args()
    if args.compare:
        asyncio.run(compare(args.turns, args.keep_last))
    else:
        asyncio.run(run(args.turns, args.durability, args.keep_last))


if __name__ == "__main__":
    main()
