"""A recording pass-through in front of the model server: what a client really sent, and when the first token
came back.

Both agents of bench/bench_model.py talk to the server through it (their base URL is the proxy's), so the
bench sees the exact chat-completions bodies (messages, tools, max_tokens) the copilot's model client and
the stock agent's ChatOpenAI produce, and times each request the same way: from the request's arrival to the
first streamed chunk that carries text or a tool call.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Exchange:
    """One chat-completions request as sent, and what came back."""

    body: dict[str, Any]
    started: float
    first_token: float | None = None
    ended: float | None = None
    reply: str = ""  # the streamed (or whole) answer text
    status: int = 0

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started


@dataclass
class Recorder:
    upstream: str  # the server's root URL (requests keep their path, e.g. /v1/chat/completions)
    exchanges: list[Exchange] = field(default_factory=list)

    def app(self) -> Starlette:
        client = httpx.AsyncClient(base_url=self.upstream, timeout=600)

        async def forward(request: Request) -> Response:
            path = request.path_params["path"]
            raw = await request.body()
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")
            }
            exchange = None
            if path.endswith("chat/completions"):
                exchange = Exchange(json.loads(raw), time.perf_counter())
                self.exchanges.append(exchange)
            upstream = client.build_request(request.method, "/" + path, content=raw, headers=headers)
            reply = await client.send(upstream, stream=True)
            if exchange is not None:
                exchange.status = reply.status_code
            return StreamingResponse(
                self._relay(reply, exchange),
                status_code=reply.status_code,
                media_type=reply.headers.get("content-type"),
                background=BackgroundTask(reply.aclose),
            )

        return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])

    async def _relay(self, reply: httpx.Response, exchange: Exchange | None) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in reply.aiter_raw():
            if exchange is not None:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._note(exchange, line)
            yield chunk
        if exchange is not None:
            self._note(exchange, buffer)
            exchange.ended = time.perf_counter()

    @staticmethod
    def _note(exchange: Exchange, line: bytes) -> None:
        text = line.strip().removeprefix(b"data:").strip()
        if not text or text == b"[DONE]":
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return
        for choice in data.get("choices") or []:
            part = choice.get("delta") or choice.get("message") or {}
            piece = part.get("content") or ""
            if (piece or part.get("tool_calls")) and exchange.first_token is None:
                exchange.first_token = time.perf_counter()
            exchange.reply += piece
