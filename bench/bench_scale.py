"""Running at scale, measured: idle Redis commands of 1 vs 3 workers, the cost of 100 open live pages, a soak.

Usage: .venv/bin/python -m bench.bench_scale [--part idle,pages,soak] [--compare ../main] [--soak-minutes 15]

Every figure comes from real processes: a private embedded Redis Stack per deployment, `copilot serve`
workers (behind Debian's HAProxy, server/scale.py, where it says so), HTTP clients in this process.
`--compare DIR` runs the same measurement on the checkout in DIR (e.g. the main branch) beside this one.

idle   Redis commands per second (INFO `total_commands_processed` deltas, this script's own INFO calls
       taken out) of a deployment nobody uses, over `--idle-seconds`; with the commands that made them
       (INFO commandstats).
pages  One worker; 100 live pages (GET /api/events, the single-user account) held open: the worker's CPU
       (utime+stime from /proc) and Redis commands per page per second over `--pages-seconds`, and
       GET /api/portfolio p50 with no page and with the 100 pages open. `--accounts N` spreads the pages
       over N users (one API key each) instead; the first holds an open position (XAUUSD 0.01 lots), or
       each of them with `--all-positions`.
soak   20 sessions through HAProxy in front of 3 workers for `--soak-minutes`: per minute the turns done,
       p50/p99 of a turn (/portfolio chat turn, GET /api/portfolio, and every 10th a /buy + approve and its
       /close + approve), the workers' RSS and Redis `used_memory`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.table import p50, print_table
from server.in_thread import free_port
from server.scale import Deployment
from tools.redis_embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@contextmanager
def deployment(code: Path, workers: int, tmp: Path, users: int = 0, **env: str) -> Iterator[Deployment]:
    """A private Redis and `workers` serve processes of the checkout `code` behind HAProxy."""
    own = EmbeddedRedis(port=free_port(), data_dir=tmp / "redis")
    own.start()
    base = {
        **os.environ,
        "PYTHONPATH": str(code),
        "REDIS_URL": own.url,
        "REDIS__PREFIX": f"b{uuid.uuid4().hex[:6]}:",
        "DATA_DIR": str(tmp / "data"),
        "FALLBACK_DATA_DIR": str(SHARED),
        "LOGGING__FILE": "",
        "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",  # slash commands only: no model is measured
        "RISK__MIN_CONFIDENCE": "0",
        "RISK__BLOCKED_AMD_PHASES": "[]",
        "RISK__BLOCK_AGAINST_SIGNAL": "false",
        "RISK__MAX_PRICE_DRIFT_PCT": "5",
        **env,
    }
    if users:
        base["SERVER__API_KEYS"] = json.dumps({f"key-u{i}": f"u{i}" for i in range(users)})
    built = Deployment(base, tmp / "lb", workers=workers, root=code)
    try:
        built.start()
        yield built
    finally:
        built.stop()
        own.stop()


def commands(r: redis.Redis) -> int:
    return int(r.info("stats")["total_commands_processed"])


def commandstats(r: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in r.info("commandstats").items()}


def rate(r: redis.Redis, seconds: float) -> tuple[float, dict[str, float]]:
    """Commands per second over `seconds` (minus the 4 INFO calls of this measurement), and per command."""
    before_stats, before = commandstats(r), commands(r)
    time.sleep(seconds)
    after, after_stats = commands(r), commandstats(r)
    per = {k: (v - before_stats.get(k, 0)) / seconds for k, v in after_stats.items()}
    per["info"] = per.get("info", 0) - 4 / seconds
    return (after - before - 4) / seconds, {k: v for k, v in per.items() if v > 0.01}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- idle ---------------------------------------------------------------------------------------------------


def idle(codes: dict[str, Path], seconds: float, accounts: int) -> None:
    rows = []
    for label, code in codes.items():
        for workers in (1, 3):
            with (
                tempfile.TemporaryDirectory() as tmp,
                deployment(code, workers, Path(tmp), users=accounts) as d,
            ):
                for i in range(accounts):  # accounts with an open position, for the ticker to scan
                    with httpx.Client(base_url=d.url, timeout=60, headers={"X-API-Key": f"key-u{i}"}) as c:
                        ask = float(c.get("/api/quote/XAUUSD").json()["ask"])
                        approve(c, "idle", f"/buy XAUUSD 0.01 sl {ask - 60:.2f} tp {ask + 120:.2f}")
                time.sleep(5)  # past the start (sweep, leader election, first passes)
                with redis.Redis.from_url(d.env["REDIS_URL"]) as r:
                    total, per = rate(r, seconds)
                top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:6])
                rows.append([label, workers, f"{total:.2f}", f"{total - per.get('ping', 0):.2f}", top])
    spread = f"{accounts} accounts with an open position" if accounts else "no account"
    print(
        f"\nIdle deployment behind HAProxy ({spread}; health check every 2 s per worker), {seconds:.0f} s:\n"
    )
    print_table(
        ["code", "workers", "Redis commands/s", "without the health checks' PING", "by command (/s)"], rows
    )


# --- pages --------------------------------------------------------------------------------------------------


async def hold_pages(url: str, count: int, accounts: int, stop: asyncio.Event, opened: list[int]) -> None:
    async def page(i: int) -> None:
        headers = {"X-API-Key": f"key-u{i % accounts}"} if accounts else {}
        timeout = httpx.Timeout(10, read=60)
        async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
            while not stop.is_set():
                try:
                    async with client.stream("GET", "/api/events?symbol=XAUUSD") as response:
                        opened[0] += 1
                        async for _ in response.aiter_bytes():
                            if stop.is_set():
                                return
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(page(i) for i in range(count)))


def portfolio_p50(url: str, headers: dict[str, str], n: int = 40) -> tuple[float, int]:
    """p50 of GET /api/portfolio (answered 200) and how many of the `n` were not."""
    times, failed = [], 0
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        for _ in range(n):
            start = time.perf_counter()
            if client.get("/api/portfolio").status_code == 200:
                times.append((time.perf_counter() - start) * 1000)
            else:
                failed += 1
            time.sleep(0.05)
    return p50(times), failed


def pages(codes: dict[str, Path], count: int, seconds: float, accounts: int, all_positions: bool) -> None:
    rows = []
    for label, code in codes.items():
        with tempfile.TemporaryDirectory() as tmp, deployment(code, 1, Path(tmp), users=accounts) as d:
            url, pid = d.worker_url(0), d.procs[0].pid
            headers = {"X-API-Key": "key-u0"} if accounts else {}
            holders = range(accounts if all_positions else 1)  # the accounts given an open position to price
            for i in holders:
                held = {"X-API-Key": f"key-u{i}"} if accounts else {}
                with httpx.Client(base_url=url, timeout=60, headers=held) as c:
                    ask = float(c.get("/api/quote/XAUUSD").json()["ask"])
                    ticket = approve(c, "bench", f"/buy XAUUSD 0.01 sl {ask - 60:.2f} tp {ask + 120:.2f}")
                    if ticket is None or not c.get("/api/portfolio").json()["positions"]:
                        raise SystemExit(f"account {i}: the position was not opened")
            time.sleep(2)
            with redis.Redis.from_url(d.env["REDIS_URL"]) as r:
                cpu0 = cpu_seconds(pid)
                idle_rate, _ = rate(r, seconds / 2)
                idle_cpu = (cpu_seconds(pid) - cpu0) / (seconds / 2) * 100
                quiet_p50, _ = portfolio_p50(url, headers)
                stop, opened = asyncio.Event(), [0]
                loop = asyncio.new_event_loop()
                holder = threading.Thread(
                    target=loop.run_until_complete,
                    args=(hold_pages(url, count, accounts, stop, opened),),
                    daemon=True,
                )
                holder.start()
                while opened[0] < count:
                    time.sleep(0.2)
                time.sleep(3)
                cpu0 = cpu_seconds(pid)
                busy_rate, per = rate(r, seconds)
                busy_cpu = (cpu_seconds(pid) - cpu0) / seconds * 100
                busy_p50, failed = portfolio_p50(url, headers)
                loop.call_soon_threadsafe(stop.set)
                holder.join(90)
            per_page = (busy_rate - idle_rate) / count
            top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:5])
            rows.append(
                [
                    label,
                    f"{idle_cpu:.1f} %",
                    f"{busy_cpu:.1f} %",
                    f"{idle_rate:.1f}",
                    f"{busy_rate:.1f}",
                    f"{per_page:.2f}",
                    f"{quiet_p50:.1f} ms",
                    f"{busy_p50:.1f} ms ({busy_p50 / quiet_p50:.2f}×)"
                    + (f", {failed}/40 failed" if failed else ""),
                    top,
                ]
            )
    spread = f"{accounts} accounts" if accounts else "one account"
    spread += f", {'each' if all_positions and accounts else 'one'} with an open position"
    print(f"\n{count} open /api/events pages ({spread}) on one worker, over {seconds:.0f} s:\n")
    head = [
        "code",
        "CPU idle",
        f"CPU {count} pages",
        "Redis/s idle",
        f"Redis/s {count} pages",
        "Redis/s per page",
        "/portfolio p50 no page",
        f"p50 {count} pages",
        "busiest commands (/s)",
    ]
    print_table(head, rows)


# --- soak ---------------------------------------------------------------------------------------------------


def failure(exc: Exception) -> str:
    """What failed, by request: the exception, the method and path, the status when there is one."""
    request = getattr(exc, "request", None)
    response = getattr(exc, "response", None)
    where = f" {request.method} {request.url.path}" if request is not None else ""
    status = f" {response.status_code}" if response is not None else ""
    return f"{type(exc).__name__}{where}{status}"


def soak(code: Path, sessions: int, minutes: float, keep: Path | None = None) -> None:
    with contextlib.ExitStack() as stack:
        tmp = keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        d = stack.enter_context(deployment(code, 3, tmp, users=sessions))
        soak_on(d, sessions, minutes)
    if keep is not None:
        print(f"workers' logs kept in {keep / 'lb'}")


def soak_on(d: Deployment, sessions: int, minutes: float) -> None:
    stop = threading.Event()
    samples: list[tuple[float, float]] = []  # (time, ms)
    errors: list[tuple[float, str, str]] = []  # (time, session, what failed)
    lock = threading.Lock()

    def trader(i: int) -> None:
        session = f"soak-{i}"
        with httpx.Client(base_url=d.url, timeout=60, headers={"X-API-Key": f"key-u{i}"}) as c:
            n = 0
            while not stop.is_set():
                n += 1
                start = time.perf_counter()
                try:
                    turn(c, session, n)
                except Exception as exc:  # counted, the soak goes on
                    with lock:
                        errors.append((time.monotonic(), session, failure(exc)))
                with lock:
                    samples.append((time.monotonic(), (time.perf_counter() - start) * 1000))
                time.sleep(1.0)

    threads = [threading.Thread(target=trader, args=(i,), daemon=True) for i in range(sessions)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    rows = []
    with redis.Redis.from_url(d.env["REDIS_URL"]) as r:
        for minute in range(1, int(minutes) + 1):
            time.sleep(max(0.0, began + minute * 60 - time.monotonic()))
            with lock:
                window = [ms for t, ms in samples if began + (minute - 1) * 60 <= t < began + minute * 60]
                failed = sum(began + (minute - 1) * 60 <= t < began + minute * 60 for t, _, _ in errors)
            rss = [rss_mb(p.pid) for p in d.procs]
            memory = int(r.info("memory")["used_memory"]) / 2**20
            rows.append(
                [
                    minute,
                    len(window),
                    f"{p50(window):.0f}",
                    f"{percentile(window, 0.99):.0f}",
                    " / ".join(f"{m:.0f}" for m in rss),
                    f"{memory:.1f}",
                    int(r.dbsize()),
                    failed,
                ]
            )
            print(f"  minute {minute}: {rows[-1]}", flush=True)
    stop.set()
    for thread in threads:
        thread.join(60)
    print(f"\nSoak: {sessions} sessions via HAProxy, 3 workers, {minutes:g} min:\n")
    head = [
        "minute",
        "turns",
        "p50 ms",
        "p99 ms",
        "workers' RSS MB",
        "Redis used_memory MB",
        "keys",
        "errors",
    ]
    print_table(head, rows)
    if errors:
        kinds = collections.Counter(what for _, _, what in errors)
        print("errors by request:", *(f"{n} × {what}" for what, n in kinds.most_common()), sep="\n  ")
        spans: dict[str, list[float]] = collections.defaultdict(list)
        for t, session, _ in errors:
            spans[session].append(t)
        print("sessions with errors (first → last error, s after the start):", *(
            f"{session}: {len(ts)} errors, {min(ts) - began:.0f} → {max(ts) - began:.0f}"
            for session, ts in sorted(spans.items())), sep="\n  ")  # fmt: skip


def turn(c: httpx.Client, session: str, n: int) -> None:
    """One trader step: a chat turn and a portfolio read; every 10th step a trade opened and closed."""
    said = c.post("/api/chat", json={"message": "/portfolio", "session_id": session})
    said.raise_for_status()
    c.get("/api/portfolio").raise_for_status()
    if n % 10 == 0:
        ask = float(c.get("/api/quote/XAUUSD").json()["ask"])
        ticket = approve(c, session, f"/buy XAUUSD 0.01 sl {ask - 60:.2f} tp {ask + 120:.2f}")
        if ticket is not None:
            approve(c, session, f"/close {ticket}")


def approve(c: httpx.Client, session: str, message: str) -> Any:
    asked = c.post("/api/chat", json={"message": message, "session_id": session})
    asked.raise_for_status()
    proposal = asked.json()["pending_approval"]
    if proposal is None:
        return None
    decision = {"proposal_id": proposal["proposal_id"], "decision": "approve"}
    done = c.post(f"/api/sessions/{session}/approval", json=decision)
    done.raise_for_status()
    order = done.json().get("order") or {}
    return order.get("ticket")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", default="idle,pages,soak")
    parser.add_argument(
        "--compare", type=Path, default=None, help="another checkout measured beside this one"
    )
    parser.add_argument("--compare-ref", default=None, help="a git commit measured beside this one")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--idle-accounts", type=int, default=20, help="accounts with a position while idle")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--pages-seconds", type=float, default=20)
    parser.add_argument("--accounts", type=int, default=0)
    parser.add_argument(
        "--all-positions", action="store_true", help="pages: each of --accounts holds a position"
    )
    parser.add_argument("--soak-minutes", type=float, default=15)
    parser.add_argument("--soak-sessions", type=int, default=20)
    parser.add_argument("--soak-keep", type=Path, default=None, help="keep the deployment's directory (logs)")
    args = parser.parse_args()
    codes = {"this": ROOT}
    if args.compare is not None:
        codes = {str(args.compare): args.compare.resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if (
            args.compare_ref
        ):  # a plain copy of that commit's tree (git archive: the repository is not touched)
            tree = Path(tmp) / "ref"
            tree.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.compare_ref], cwd=ROOT, check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            codes = {args.compare_ref: tree, "this": ROOT}
        measure(args, codes)


def measure(args: argparse.Namespace, codes: dict[str, Path]) -> None:
    parts = set(args.part.split(","))
    if "idle" in parts:
        idle(codes, args.idle_seconds, args.idle_accounts)
    if "pages" in parts:
        pages(codes, args.pages, args.pages_seconds, args.accounts, args.all_positions)
    if "soak" in parts:
        soak(ROOT, args.soak_sessions, args.soak_minutes, args.soak_keep)


if __name__ == "__main__":
    main()
