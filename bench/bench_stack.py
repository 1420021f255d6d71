"""The copilot against the stock LangGraph stack, side by side, through HTTP, in one run.

Usage: .venv/bin/python -m bench.bench_stack [--quick] [--profile TURNS]

Starts the zero-latency Ollama stand-in (bench/ollama_standin.py), one embedded Redis Stack per stack (own
port, own data dir, AOF everysec as in production) and three servers, each in its own process under uvicorn:
  copilot   server.app.create_app(settings) — the real ChatOllama, AsyncRedisSaver, as `copilot serve` runs
  memory    the same graph and app compiled with InMemorySaver (the limit: no durability)
  baseline  bench/baseline.py — create_react_agent + ChatOllama + one tool on the stock AsyncRedisSaver
One httpx client drives them in turn, phase by phase (so a slow spell of this shared machine hits all three),
and prints one table: each figure for the three, the copilot/baseline ratio and the issue's target.

--session-only: only the copilot and only its one long session (--turns): its Redis keys and bytes, per
kind of key (checkpoint documents, their writes, the live-context texts, the rest).

--profile TURNS: only the copilot, cProfile switched on inside its server process (signals, after start-up
and a warm-up) for TURNS turns of one session; prints the top functions by cumulative and own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.harness import stop_process, wait_http
from bench.table import p50, p95, print_table
from server.in_thread import free_port
from tools.redis_embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KINDS = ("copilot", "memory", "baseline")
LABEL = {"copilot": "copilot (Redis)", "memory": "copilot (InMemorySaver)", "baseline": "baseline (stock)"}
MESSAGE = "how is my account?"
PROFILE_ENV = "BENCH_PROFILE"


# ------------------------------------------------------------------ server side (one process per stack)


def bench_settings(redis_url: str, ollama: str, prefix: str, data_dir: str) -> Any:
    """The copilot's settings for the bench: the stand-in as Ollama, a market moment where the gate can pass
    (README: REPLAY__START=2026-03-02T10:00:00Z), limits wide enough for many small paper orders."""
    from config import load_settings

    return load_settings(
        redis_url=redis_url,
        redis={"prefix": prefix},
        llm={"base_url": ollama},
        data_dir=data_dir,
        fallback_data_dir=str(SHARED),
        logging={"file": None},
        replay={"start": "2026-03-02T10:00:00Z"},
        risk={
            "min_confidence": 0,
            "blocked_amd_phases": [],
            "block_against_signal": False,
            "max_open_positions": 1000,
            "max_lots_per_symbol": 1000,
            "daily_loss_limit_pct": 100,
        },
    )


async def _app(kind: str, redis_url: str, ollama: str, prefix: str, data_dir: str) -> Any:
    if kind == "baseline":
        from bench.baseline import baseline_app

        return baseline_app(redis_url, ollama)
    from server.app import create_app

    settings = bench_settings(redis_url, ollama, prefix, data_dir)
    if kind == "copilot":
        return create_app(settings)
    # The same graph and facade, compiled with InMemorySaver; services on Redis as in the copilot.
    import redis.asyncio as aioredis
    from langgraph.checkpoint.memory import InMemorySaver

    from graph.builder import build_graph
    from graph.copilot import Copilot
    from graph.model.client import build_chat_model
    from tools.services import build_services

    client = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
    services = await build_services(settings, client, clock_owner=True)
    graph = build_graph(services, settings, build_chat_model(settings)).compile(checkpointer=InMemorySaver())
    return create_app(settings, Copilot(graph, services, settings))


async def serve(kind: str, port: int, redis_url: str, ollama: str, prefix: str, data_dir: str) -> None:
    import uvicorn

    app = await _app(kind, redis_url, ollama, prefix, data_dir)
    profile_to = os.environ.get(PROFILE_ENV)
    if profile_to:  # SIGUSR1 starts profiling this (the event loop's) thread, SIGUSR2 stops and writes it
        profiler = cProfile.Profile()

        def stop() -> None:
            profiler.disable()
            profiler.dump_stats(profile_to)

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, stop)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()


# ------------------------------------------------------------------ the driver


@dataclass
class Stack:
    kind: str
    url: str
    proc: subprocess.Popen[bytes]
    redis: EmbeddedRedis
    log: Path
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_path(self) -> str:
        return "/chat" if self.kind == "baseline" else "/api/chat"

    def rss_mb(self, field_name: str = "VmRSS") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")


def start_process(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
        )


def start_stack(kind: str, tmp: Path, ollama: str, env: dict[str, str] | None = None) -> Stack:
    server = EmbeddedRedis(port=free_port(), data_dir=tmp / f"redis-{kind}")
    server.start()
    port, log = free_port(), tmp / f"{kind}.log"
    args = [
        "-m",
        "bench.bench_stack",
        "serve",
        kind,
        "--port",
        str(port),
        "--redis-url",
        server.url,
        "--ollama",
        ollama,
        "--prefix",
        f"b{uuid.uuid4().hex[:6]}:",
        "--data-dir",
        str(tmp / "data"),
    ]
    proc = start_process(args, log, env)
    stack = Stack(kind, f"http://127.0.0.1:{port}", proc, server, log)
    try:
        wait_http(stack.url, proc, log, "/openapi.json")
    except BaseException:
        stop_process(proc)
        server.stop()
        raise
    return stack


def stop_stack(stack: Stack) -> None:
    stop_process(stack.proc)
    stack.redis.stop()


async def chat(client: httpx.AsyncClient, stack: Stack, session: str, message: str = MESSAGE) -> float:
    """One turn through the stack's chat route; seconds. Checks the turn did call the tool."""
    start = time.perf_counter()
    response = await client.post(
        stack.url + stack.chat_path, json={"message": message, "session_id": session}
    )
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    body = response.json()
    if stack.kind != "baseline" and message == MESSAGE and "get_portfolio" not in body.get("tools_used", []):
        stack.results["bad_turns"] = stack.results.get("bad_turns", 0) + 1
    return elapsed


def redis_keys(server: EmbeddedRedis) -> set[bytes]:
    client = redis.Redis(host=server.bind, port=server.port)
    return set(client.scan_iter(count=1000))


def redis_footprint(server: EmbeddedRedis, before: set[bytes], session: str) -> tuple[int, int, int]:
    """(keys, bytes) the session added: keys new since `before` or naming the session, their MEMORY USAGE;
    and Redis's used_memory now."""
    client = redis.Redis(host=server.bind, port=server.port)
    after = set(client.scan_iter(count=1000))
    mine = (after - before) | {k for k in after if session.encode() in k}
    size = sum(int(client.memory_usage(k, samples=0) or 0) for k in mine)
    return len(mine), size, int(client.info("memory")["used_memory"])


def footprint_by_kind(server: EmbeddedRedis, before: set[bytes], session: str) -> dict[str, tuple[int, int]]:
    """The session's keys as redis_footprint counts them, per kind (the key's name after the prefix, up to
    its next ':'): kind -> (keys, MEMORY USAGE bytes)."""
    client = redis.Redis(host=server.bind, port=server.port)
    after = set(client.scan_iter(count=1000))
    kinds: dict[str, tuple[int, int]] = {}
    for key in (after - before) | {k for k in after if session.encode() in k}:
        parts = key.decode(errors="replace").split(":")
        kind = parts[1] if len(parts) > 1 else parts[0]
        keys, size = kinds.get(kind, (0, 0))
        kinds[kind] = (keys + 1, size + int(client.memory_usage(key, samples=0) or 0))
    return kinds


def command_stats(server: EmbeddedRedis) -> dict[str, tuple[int, int]]:
    """Redis's INFO commandstats: command -> (calls, microseconds)."""
    info = redis.Redis(host=server.bind, port=server.port).info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in info.items()}


async def long_session(client: httpx.AsyncClient, stack: Stack, turns: int) -> None:
    session = f"long-{uuid.uuid4().hex[:8]}"
    before = redis_keys(stack.redis)
    used_before = int(redis.Redis(host=stack.redis.bind, port=stack.redis.port).info("memory")["used_memory"])
    commands = command_stats(stack.redis)
    latencies = [await chat(client, stack, session) for _ in range(turns)]
    after = command_stats(stack.redis)
    keys, size, used = redis_footprint(stack.redis, before, session)
    delta = {
        k: (c - commands.get(k, (0, 0))[0], u - commands.get(k, (0, 0))[1]) for k, (c, u) in after.items()
    }
    delta = {k: v for k, v in delta.items() if v[0] > 0 and k not in ("scan", "info", "memory|usage")}
    top = sorted(delta.items(), key=lambda kv: kv[1][1], reverse=True)[:4]
    stack.results.update(
        all=[x * 1000 for x in latencies],
        first=[x * 1000 for x in latencies[:20]],
        last=[x * 1000 for x in latencies[-20:]],
        keys=keys,
        bytes=size,
        used_delta=used - used_before,
        commands=sum(c for c, _ in delta.values()) / turns,
        redis_us=sum(u for _, u in delta.values()) / turns,
        top_commands=", ".join(f"{k} {c / turns:.1f}×/{u / turns / 1000:.2f} ms" for k, (c, u) in top),
    )


async def throughput(client: httpx.AsyncClient, stack: Stack, sessions: int, turns: int) -> None:
    prefix = f"tp-{uuid.uuid4().hex[:6]}"
    latencies: list[float] = []

    async def one(i: int) -> None:
        for _ in range(turns):
            latencies.append(await chat(client, stack, f"{prefix}-{i}"))

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    wall = time.perf_counter() - start
    stack.results.update(
        tps=sessions * turns / wall,
        tp_p50=p50(latencies) * 1000,
        tp_p95=p95(latencies) * 1000,
        rss=stack.rss_mb(),
    )


async def first_event(client: httpx.AsyncClient, stack: Stack, samples: int) -> None:
    firsts, finals = [], []
    for _ in range(samples):
        body = {"message": MESSAGE, "session_id": f"sse-{uuid.uuid4().hex[:8]}"}
        start = time.perf_counter()
        first = 0.0
        async with client.stream("POST", stack.url + "/api/chat/stream", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("event:") and not first:
                    first = time.perf_counter() - start
        finals.append((time.perf_counter() - start) * 1000)
        firsts.append(first * 1000)
    stack.results.update(sse_first=firsts, sse_final=finals)


async def approval(client: httpx.AsyncClient, stack: Stack, samples: int) -> None:
    """/buy 0.01 lots → approval card; then the approval's SSE: time to the node after `execute` (the order
    is placed and its checkpoint written) and to `final` (the model has commented too)."""
    placed, finals, failures = [], [], 0
    for _ in range(samples):
        session = f"appr-{uuid.uuid4().hex[:8]}"
        quote = (await client.get(stack.url + "/api/quote/XAUUSD")).json()
        ask = float(quote["ask"])
        buy = f"/buy XAUUSD 0.01 sl {ask - 5:.2f} tp {ask + 10:.2f}"
        result = (
            await client.post(stack.url + "/api/chat", json={"message": buy, "session_id": session})
        ).json()
        pending = result.get("pending_approval")
        if not pending:
            failures += 1
            stack.results["approval_error"] = str(result)[:300]
            continue
        body = {"proposal_id": pending["proposal_id"], "decision": "approve"}
        start = time.perf_counter()
        after_execute, executed, order = 0.0, False, None
        url = f"{stack.url}/api/sessions/{session}/approval/stream"
        async with client.stream("POST", url, json=body) as response:
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "node":
                    if executed and not after_execute:
                        after_execute = time.perf_counter() - start
                    executed = executed or '"execute"' in line
                elif line.startswith("data:") and event == "final":
                    order = line
        finals.append((time.perf_counter() - start) * 1000)
        if order is None or '"order": null' in order or not after_execute:
            failures += 1
            stack.results["approval_error"] = str(order)[:300]
            continue
        placed.append(after_execute * 1000)
    stack.results.update(placed=placed, approval_final=finals, approval_failures=failures)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and b == b and a == a else "–"


def report(stacks: dict[str, Stack], args: argparse.Namespace) -> None:
    c, m, b = (stacks[k].results for k in KINDS)
    turns = args.turns
    late = f"{turns - 19}–{turns}"

    def ms(r: dict[str, Any], key: str) -> str:
        return f"{p50(r[key]):.1f} ms" if r.get(key) else "–"

    rows: list[list[object]] = []

    def row(label: str, cells: list[object], target: str, met: bool) -> None:
        """One figure: the copilot's, InMemorySaver's and the baseline's, how they compare, the target."""
        rows.append([label, *cells, target, "yes" if met else "NO"])

    def across(
        label: str, show: Callable[[dict[str, Any]], object], key: str, target: str, met: bool
    ) -> None:
        """A figure every stack has (`show`n), and the copilot's value of `key` over the baseline's."""
        mine, theirs = (p50(r[key]) if isinstance(r[key], list) else r[key] for r in (c, b))
        row(label, [show(c), show(m), show(b), ratio(mine, theirs)], target, met)

    def copilot_only(label: str, key: str, baseline: str, target: str, limit_ms: float) -> None:
        """A figure the baseline cannot show (it says why): p50 of `key`, in ms, against `limit_ms`."""
        mine = p50(c[key]) if c.get(key) else float("inf")
        row(label, [ms(c, key), ms(m, key), baseline, "–"], target, mine <= limit_ms)

    def durability(label: str, cost: float, free: float) -> None:
        """The copilot on Redis against itself on InMemorySaver, as a ratio above 1 by what Redis costs
        (latency: Redis over memory; throughput: memory over Redis)."""
        row(f"durability cost: {label}", [ratio(cost, free), "1.00×", "–", "–"], "≤ 1.5×", cost <= 1.5 * free)

    c1, m1, b1 = p50(c["first"]), p50(m["first"]), p50(b["first"])
    c2, m2, b2 = p50(c["last"]), p50(m["last"]), p50(b["last"])
    ct, mt = c["tps"], m["tps"]
    load = f"{args.sessions} concurrent sessions × {args.session_turns} turns, turns/s"
    session = f"Redis per {turns}-turn session"
    across("per-turn p50, turns 1–20", lambda r: ms(r, "first"), "first", "≤ 0.5×", c1 <= 0.5 * b1)
    across(f"per-turn p50, turns {late}", lambda r: ms(r, "last"), "last", "≤ 0.25×", c2 <= 0.25 * b2)
    drift = [ratio(c2, c1), ratio(m2, m1), ratio(b2, b1), "–"]
    row(f"turns {late} / turns 1–20", drift, "copilot 0.8–1.2×", 0.8 <= c2 / c1 <= 1.2)
    across(load, lambda r: f"{r['tps']:.1f}", "tps", "≥ 2×", ct >= 2 * b["tps"])
    durability("Redis / InMemorySaver, turns 1–20 p50", c1, m1)
    durability("InMemorySaver / Redis, turns/s", mt, ct)
    across(f"{session}, MB", lambda r: f"{r['bytes'] / 1e6:.2f}", "bytes", "≤ 1 MB", c["bytes"] <= 1e6)
    across(f"{session}, keys", lambda r: r["keys"], "keys", "≤ 50", c["keys"] <= 50)
    copilot_only("first SSE event p50", "sse_first", "– (no stream route)", "≤ 15 ms", 15)
    copilot_only("approval → order placed p50", "placed", "– (no approval)", "≤ 25 ms", 25)
    rss = f"server RSS after the {args.sessions}-session load"
    across(rss, lambda r: f"{r['rss']:.0f} MB", "rss", "≤ 200 MB", c["rss"] <= 200)
    print()
    print_table(
        [
            "figure",
            LABEL["copilot"],
            LABEL["memory"],
            LABEL["baseline"],
            "copilot / baseline",
            "target",
            "met?",
        ],
        rows,
    )
    print()
    details: list[list[object]] = []
    for kind in KINDS:
        r = stacks[kind].results
        details.append(
            [
                LABEL[kind],
                f"{p95(r['first']):.1f} / {p95(r['last']):.1f} ms",
                f"{r['tp_p50']:.0f} / {r['tp_p95']:.0f} ms",
                f"{r['used_delta'] / 1e6:.2f} MB",
                f"{stacks[kind].rss_mb('VmHWM'):.0f} MB",
                f"{p50(r['sse_final']):.1f} ms" if r.get("sse_final") else "–",
                f"{p50(r['approval_final']):.1f} ms" if r.get("approval_final") else "–",
                f"{r.get('bad_turns', 0)} / {r.get('approval_failures', 0)}",
            ]
        )
    print_table(
        [
            "details",
            f"p95 turns 1–20 / {late}",
            "p50 / p95 turn under load",
            "used_memory delta",
            "peak RSS",
            "SSE final p50",
            "approval final p50",
            "bad turns / failed approvals",
        ],
        details,
    )
    print()
    blocks = []
    for i in range(0, turns, 20):
        cells = [f"{p50(stacks[k].results['all'][i : i + 20]):.1f} ms" for k in KINDS]
        blocks.append([f"{i + 1}–{min(i + 20, turns)}", *cells])
    print_table([f"one {turns}-turn session, p50 per block", *(LABEL[k] for k in KINDS)], blocks)
    print()
    redis_rows = [
        [
            LABEL[k],
            f"{stacks[k].results['commands']:.1f}",
            f"{stacks[k].results['redis_us'] / 1000:.2f} ms",
            stacks[k].results["top_commands"],
        ]
        for k in KINDS
    ]
    print_table(
        [f"Redis per turn ({turns}-turn session)", "commands", "server time", "top: calls/time per turn"],
        redis_rows,
    )
    for kind in KINDS:
        if "approval_error" in stacks[kind].results:
            print(f"{kind}: an approval failed: {stacks[kind].results['approval_error']}")


async def drive(stacks: dict[str, Stack], args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for stack in stacks.values():  # warm-up: imports, first model call, caches
            for _ in range(3):
                await chat(client, stack, f"warm-{uuid.uuid4().hex[:6]}")
            stack.results.pop("bad_turns", None)
        phases: list[tuple[str, Callable[[Stack], Awaitable[None]], tuple[str, ...]]] = [
            (
                f"{args.sessions} sessions × {args.session_turns} turns",
                lambda s: throughput(client, s, args.sessions, args.session_turns),
                KINDS,
            ),
            (f"one {args.turns}-turn session", lambda s: long_session(client, s, args.turns), KINDS),
            ("first SSE event", lambda s: first_event(client, s, args.samples), ("copilot", "memory")),
            ("approval → order", lambda s: approval(client, s, args.samples), ("copilot", "memory")),
        ]
        for name, phase, kinds in phases:
            for kind in kinds:
                start = time.perf_counter()
                await phase(stacks[kind])
                print(f"  {name:<28} {kind:<9} {time.perf_counter() - start:6.1f} s", flush=True)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.platform()}"


def versions() -> str:
    from importlib.metadata import version

    names = ("langgraph", "langgraph-checkpoint-redis", "langchain-ollama", "fastapi", "uvicorn")
    return ", ".join(f"{n} {version(n)}" for n in names)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def standin_ollama(prefix: str) -> Iterator[tuple[Path, str]]:
    """A temporary folder and the Ollama stand-in (logging into it) started: (the folder, the stand-in's
    URL); the stand-in is stopped and the folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        tmp = Path(name)
        port = free_port()
        ollama = f"http://127.0.0.1:{port}"
        standin = start_process(["-m", "bench.ollama_standin", "--port", str(port)], tmp / "standin.log")
        try:
            wait_http(ollama, standin, tmp / "standin.log", "/")
            yield tmp, ollama
        finally:
            stop_process(standin)


def run(args: argparse.Namespace) -> None:
    print(f"bench_stack {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"{versions()}; load average before: {load()}")
    with standin_ollama("bench-stack-") as (tmp, ollama):
        stacks: dict[str, Stack] = {}
        try:
            for kind in KINDS:
                stacks[kind] = start_stack(kind, tmp, ollama)
            asyncio.run(drive(stacks, args))
            report(stacks, args)
        finally:
            for stack in stacks.values():
                stop_stack(stack)
    print(f"load average after: {load()}")


def session_only(args: argparse.Namespace) -> None:
    """The copilot's Redis per long session, alone: README's bench_stack row without the other phases."""
    print(f"bench_stack --session-only {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}")
    with standin_ollama("bench-session-") as (tmp, ollama):
        stack = start_stack("copilot", tmp, ollama)
        try:

            async def drive_one() -> None:
                async with httpx.AsyncClient(timeout=120) as client:
                    for _ in range(3):
                        await chat(client, stack, f"warm-{uuid.uuid4().hex[:6]}")
                    stack.results.pop("bad_turns", None)
                    session = f"long-{uuid.uuid4().hex[:8]}"
                    before = redis_keys(stack.redis)
                    commands = command_stats(stack.redis)
                    for _ in range(args.turns):
                        await chat(client, stack, session)
                    after = command_stats(stack.redis)
                    keys, size, _ = redis_footprint(stack.redis, before, session)
                    kinds = footprint_by_kind(stack.redis, before, session)
                print(f"Redis per {args.turns}-turn session: {keys} keys, {size / 1e6:.2f} MB")
                rows = [[k, n, f"{b / 1e3:.1f} KB"] for k, (n, b) in sorted(kinds.items())]
                print_table(["kind of key", "keys", "MEMORY USAGE"], rows)
                turns = args.turns
                delta = {
                    k: (c - commands.get(k, (0, 0))[0], u - commands.get(k, (0, 0))[1])
                    for k, (c, u) in after.items()
                }
                delta = {k: v for k, v in delta.items() if v[0] > 0}
                top = sorted(delta.items(), key=lambda kv: kv[1][1], reverse=True)[:8]
                print(
                    f"Redis per turn: {sum(c for c, _ in delta.values()) / turns:.1f} commands, "
                    f"{sum(u for _, u in delta.values()) / turns / 1000:.2f} ms server time"
                )
                print_table(
                    ["command", "calls per turn", "ms per turn"],
                    [[k, f"{c / turns:.2f}", f"{u / turns / 1000:.3f}"] for k, (c, u) in top],
                )
                print(f"bad turns: {stack.results.get('bad_turns', 0)}")

            asyncio.run(drive_one())
        finally:
            stop_stack(stack)


async def profiled_turns(stack: Stack, turns: int) -> None:
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(3):
            await chat(client, stack, "warm")
        stack.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        session = f"prof-{uuid.uuid4().hex[:6]}"
        start = time.perf_counter()
        latencies = [await chat(client, stack, session) for _ in range(turns)]
        wall = time.perf_counter() - start
        stack.proc.send_signal(signal.SIGUSR2)
    print(f"{turns} turns of one session under cProfile: {wall:.1f} s, p50 {p50(latencies) * 1000:.1f} ms")


def profile(args: argparse.Namespace) -> None:
    print(f"bench_stack --profile {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; load {load()}")
    with standin_ollama("bench-profile-") as (tmp, ollama):
        out = tmp / "copilot.prof"
        stack = start_stack("copilot", tmp, ollama, {**os.environ, PROFILE_ENV: str(out)})
        try:
            asyncio.run(profiled_turns(stack, args.profile))
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # dump_stats may still be writing
        finally:
            stop_stack(stack)
        print_profile(out)


IDLE = ("<method 'poll' of 'select.epoll' objects>", "<method 'select' of 'select.epoll' objects>")
# Event-loop and server frames whose cumulative time is everything (or includes the idle wait).
FRAMES = (
    "run_forever",
    "_run_once",
    "_run",
    "run",
    "run_until_complete",
    "serve",
    "main",
    "<module>",
    "<method 'run' of '_contextvars.Context' objects>",
)


WATCH = (
    "bind_tools",
    "aput",
    "aput_writes",
    "dumps_typed",
    "loads_typed",
    "aget_state",
    "aget_tuple",
    "convert_to_openai_tool",
    "_constructor_class",
    "import_module",
)


def print_profile(path: Path, top: int = 25) -> None:
    """Top functions of the profile. CPU = own time of everything but the selector's wait (idle loop).
    cProfile counts every resumption of a coroutine as a call: call counts of async functions are inflated."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(v[2] for k, v in raw.items() if k[2] not in IDLE)

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "").split("python3.11/")[-1]
        return f"{short}:{line} {func}" if line else func

    watched = [k for k in raw if k[2] in WATCH]
    rows = [[name(k), raw[k][1], f"{raw[k][3]:.2f} s", f"{raw[k][3] / total * 100:.1f} %"] for k in watched]
    print(f"\nWatched functions (CPU = {total:.2f} s):")
    print_table(
        ["function", "calls", "cumulative", "% CPU"], sorted(rows, key=lambda r: -float(str(r[2])[:-2]))
    )
    for title, index in (("cumulative", 3), ("own time", 2)):
        rows = []
        for key, value in sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True):
            if key[2] in IDLE or key[2] in FRAMES or "asyncio/" in key[0] or "cProfile" in key[0]:
                continue
            rows.append(
                [
                    name(key),
                    value[1],
                    f"{value[3]:.2f} s",
                    f"{value[3] / total * 100:.1f} %",
                    f"{value[2]:.2f} s",
                    f"{value[2] / total * 100:.1f} %",
                ]
            )
            if len(rows) == top:
                break
        print(f"\nTop {top} by {title} (CPU = {total:.2f} s: own time of all but the selector's wait):")
        print_table(["function", "calls", "cumulative", "% CPU", "own", "own % CPU"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve", help="(internal) run one stack's server in this process")
    srv.add_argument("kind", choices=KINDS)
    for option in ("--port", "--redis-url", "--ollama", "--prefix", "--data-dir"):
        srv.add_argument(option, required=True)
    parser.add_argument("--quick", action="store_true", help="a short run: 40 turns, 20×3, 5 samples")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--session-turns", type=int, default=10)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, metavar="TURNS")
    parser.add_argument("--session-only", action="store_true", help="only the copilot's long session")
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.kind, int(args.port), args.redis_url, args.ollama, args.prefix, args.data_dir))
        return
    if args.quick:
        args.turns, args.session_turns, args.samples = 40, 3, 5
    if args.session_only:
        session_only(args)
    elif args.profile:
        profile(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
