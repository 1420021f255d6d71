"""How soon a fill reaches the live feed: from the approval's answer to the `fill` frame on /api/events.

Usage: .venv/bin/python -m bench.bench_notices [--runs 20]
Starts a private embedded Redis Stack and the real app under uvicorn in this process; two pages follow the
feed, one on XAUUSD and one on EURUSD (its history ends in 2018: no quote, the notices still come). Each run
opens a 0.01-lot XAUUSD position and closes it (/buy, approve, /close, approve) and times each notice from
the approval's HTTP answer to its frame on each stream; it also counts frames per notice id.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter

import httpx

from bench.harness import private_app
from bench.table import p50, p95, print_table
from graph.model.fake import ScriptedChatModel

RELAXED = {
    "min_confidence": 0.0,
    "blocked_amd_phases": [],
    "block_against_signal": False,
    "min_risk_reward": 0,
}


def follow(url: str, symbol: str, seen: dict[str, float], ids: Counter[str], stop: threading.Event) -> None:
    """Record when each fill frame arrived (by "ticket:kind"), reconnecting with Last-Event-ID."""
    last = None
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=40)) as client:
        while not stop.is_set():
            headers = {"Last-Event-ID": last} if last else {}
            with client.stream("GET", f"/api/events?symbol={symbol}", headers=headers) as response:
                event, frame_id = None, None
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        frame_id = last = line[3:].strip()
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "fill" and frame_id:
                        fill = json.loads(line[5:])
                        seen[f"{fill['ticket']}:{fill['kind']}"] = time.perf_counter()
                        ids[frame_id] += 1
                    elif line == "":
                        event, frame_id = None, None
                    if stop.is_set():
                        return


def approve(client: httpx.Client, session: str, message: str) -> tuple[int, float, float]:
    """The ticket, when the approval was sent and when its answer came."""
    proposal = client.post("/api/chat", json={"message": message, "session_id": session}).json()
    decision = {"proposal_id": proposal["pending_approval"]["proposal_id"], "decision": "approve"}
    sent = time.perf_counter()
    order = client.post(f"/api/sessions/{session}/approval", json=decision).json()["order"]
    return int(order["ticket"]), sent, time.perf_counter()


def run(url: str, runs: int) -> None:
    streams = {s: ({}, Counter()) for s in ("XAUUSD", "EURUSD")}  # type: ignore[var-annotated]
    stop = threading.Event()
    threads = [
        threading.Thread(target=follow, args=(url, s, *v, stop), daemon=True) for s, v in streams.items()
    ]
    for thread in threads:
        thread.start()
    time.sleep(2)
    asked: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(runs):
            ask = float(client.get("/api/quote/XAUUSD").json()["ask"])
            ticket, *at = approve(client, f"b-{i}", f"/buy XAUUSD 0.01 sl {ask - 30:.2f} tp {ask + 30:.2f}")
            asked[f"{ticket}:open"] = (at[0], at[1])
            _, *at = approve(client, f"b-{i}", f"/close {ticket}")
            asked[f"{ticket}:manual"] = (at[0], at[1])
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(5)
    rows = []
    for symbol, (seen, ids) in streams.items():
        sent = [(seen[k] - t[0]) * 1000 for k, t in asked.items() if k in seen]
        answer = [(seen[k] - t[1]) * 1000 for k, t in asked.items() if k in seen]
        missing, doubled = len(asked) - len(sent), sum(n - 1 for n in ids.values())
        figures = f"{p50(sent):.1f} / {p95(sent):.1f} ms", f"{p50(answer):+.1f} / {p95(answer):+.1f} ms"
        rows.append([f"{symbol} stream", len(asked), missing, doubled, *figures])
    head = ["feed", "notices", "missing", "doubled", "approval sent → frame (median / p95)", "answer → frame"]
    print_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with private_app(ScriptedChatModel(replies=["ok"]), risk=RELAXED) as url:
        run(url, args.runs)


if __name__ == "__main__":
    main()
