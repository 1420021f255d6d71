"""The load-balancer tests' machinery: a real HAProxy in front of real worker processes (server/scale.py's
Deployment) on the suite's Redis, live-feed readers that reconnect with Last-Event-ID, and ledger reads."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from tools.keys import AccountKeys


def client(url: str, user: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": f"key-{user}"})


def wait_until(what: str, check: Any, seconds: float = 120) -> None:
    """A generous bound for waiting on the market or a takeover; nothing is asserted about speed."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


@dataclass
class Page:
    """One open page's live feed through the load balancer: every frame with an id, counted by id,
    reconnecting with Last-Event-ID when a stream ends (every 30 s) as EventSource does."""

    url: str
    user: str
    frames: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (event, id, data)
    ids: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    last_id: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Page:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_until("the page's first frame", lambda: self.connections > 0 and self.last_id is not None, 60)
        return self

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(40)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [data for name, _, data in self.frames if name == event]

    def _run(self) -> None:
        timeout = httpx.Timeout(10, read=40)
        with httpx.Client(base_url=self.url, timeout=timeout, headers={"X-API-Key": f"key-{self.user}"}) as c:
            while not self.stop.is_set():
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    with c.stream("GET", "/api/events?symbol=XAUUSD", headers=headers) as response:
                        self.connections += 1
                        self._read(response)
                except httpx.TransportError:  # a worker killed under the stream: reconnect, as a page does
                    time.sleep(0.5)

    def _read(self, response: httpx.Response) -> None:
        event, frame_id = None, None
        for line in response.iter_lines():
            if line.startswith("id:"):
                frame_id = self.last_id = line[3:].strip()
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                self.frames.append((event, frame_id or "", json.loads(line[5:])))
                if frame_id:
                    self.ids[frame_id] += 1
            elif line == "":
                event, frame_id = None, None
            if self.stop.is_set():
                return


def filled_orders(redis_url: str, prefix: str, user: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        orders = [json.loads(o) for o in r.lrange(AccountKeys(prefix, f"paper-{user}").orders, 0, -1)]
    return [o for o in orders if o.get("status") == "filled"]


def closed_trades(redis_url: str, prefix: str, user: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        return [json.loads(t) for t in r.lrange(AccountKeys(prefix, f"paper-{user}").closed, 0, -1)]
