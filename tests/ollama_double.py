"""A scripted stand-in for the Ollama server speaking its real wire format (/api/chat NDJSON, /api/show).

Each test queues replies and reads back the recorded request bodies. Formats follow Ollama's API docs and the
`ollama` client's types: streaming chunks carry model, created_at, message{role, content, tool_calls?}, done;
the last one adds done_reason and the durations/counters. Errors are {"error": "..."} with the HTTP status.

A reply can be scripted to misbehave the way a real server can: a slow first byte (`delay_s`), a pause between
chunks (`interval_s`), an HTTP error (`error` + `status`: 404 model not found, 503 "server busy"), an error
line inside the stream (`stream_error`), `done_reason` "length", or a cut stream (`cut`): "no_done" ends the
body cleanly without the final `done` chunk, "mid_line" ends it inside a JSON line, "drop" closes the
connection in the middle of the chunked body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One scripted /api/chat answer: text (streamed in `chunks` pieces) and/or native tool calls."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name": ..., "arguments": {...}}]
    chunks: int = 3
    delay_s: float = 0.0  # before the first byte: lets tests exceed the client's timeout
    error: str | None = None
    status: int = 200
    interval_s: float = 0.0  # between streamed chunks: lets tests see tokens arrive before the end
    done_reason: str = "stop"  # "length": the answer hit num_predict
    stream_error: str | None = None  # an {"error": ...} line after the content, instead of the done chunk
    cut: Literal["no_done", "mid_line", "drop"] | None = None


class DropConnection(Exception):
    """Raised inside a streaming body: uvicorn then closes the connection without ending the chunked body."""


@dataclass
class OllamaDouble:
    models: dict[str, list[str]] = field(
        default_factory=lambda: {"llama3.1:8b-instruct-q5_K_M": ["completion", "tools"]}
    )
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every /api/chat body, in order
    show_requests: list[dict[str, Any]] = field(default_factory=list)
    load_requests: list[dict[str, Any]] = field(default_factory=list)  # chats with no messages
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() of each line of the last stream

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/chat", self._chat, methods=["POST"]),
                                 Route("/api/show", self._show, methods=["POST"])])  # fmt: skip

    async def _show(self, request: Request) -> Response:
        body = await request.json()
        self.show_requests.append(body)
        name = body.get("model") or body.get("name", "")
        if name not in self.models:
            return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)
        caps = self.models[name]
        template = "{{ if .Tools }}tools{{ end }}{{ .Prompt }}" if "tools" in caps else "{{ .Prompt }}"
        return JSONResponse({
            "modelfile": f"FROM {name}", "parameters": "stop \"<|eot_id|>\"", "template": template,
            "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                        "parameter_size": "8.0B", "quantization_level": "Q5_K_M"},
            "model_info": {"general.architecture": "llama"},
            "capabilities": caps, "modified_at": "2025-01-01T00:00:00Z",
        })  # fmt: skip

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        model = body.get("model", "")
        if model not in self.models:
            return JSONResponse({"error": f"model '{model}' not found"}, status_code=404)
        if not body.get("messages"):  # Ollama loads the model and answers done_reason "load"
            self.requests.pop()
            self.load_requests.append(body)
            loaded = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                      "done_reason": "load", "done": True}  # fmt: skip
            return JSONResponse(loaded)
        if body.get("tools") and "tools" not in self.models[model]:
            error = f"registry.ollama.ai/library/{model} does not support tools"
            return JSONResponse({"error": error}, status_code=400)
        reply = self.replies.popleft() if self.replies else Reply(content="(no scripted reply)")
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error:
            return JSONResponse({"error": reply.error}, status_code=reply.status)
        lines = list(_chunks(model, reply))
        if body.get("stream", True):
            self.sent_at = []
            return StreamingResponse(self._ndjson(lines, reply), media_type="application/x-ndjson")
        return JSONResponse(_merge(lines))

    async def _ndjson(self, lines: list[dict[str, Any]], reply: Reply) -> Any:
        body = [json.dumps(line) + "\n" for line in lines]
        if reply.stream_error:
            body[-1] = json.dumps({"error": reply.stream_error}) + "\n"
        if reply.cut == "no_done":
            body.pop()
        elif reply.cut == "mid_line":  # generation stops halfway through the last content line
            if len(body) > 1:
                body.pop()
            body[-1] = body[-1][: len(body[-1]) // 2]
        for i, line in enumerate(body):
            if i and reply.interval_s:
                await asyncio.sleep(reply.interval_s)
            if reply.cut == "drop" and i == len(body) - 1:
                raise DropConnection("scripted: connection dropped mid-stream")
            self.sent_at.append(time.monotonic())
            yield line
            await asyncio.sleep(0)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _chunks(model: str, reply: Reply) -> list[dict[str, Any]]:
    text, n = reply.content, max(1, reply.chunks)
    size = max(1, -(-len(text) // n))
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    out = [
        {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": p}, "done": False}
        for p in pieces
    ]
    if reply.tool_calls:
        calls = [{"id": f"call_{i}", "function": {"index": i, "name": c["name"], "arguments": c["arguments"]}}
                 for i, c in enumerate(reply.tool_calls)]  # fmt: skip
        message = {"role": "assistant", "content": "", "tool_calls": calls}
        out.append({"model": model, "created_at": _now(), "message": message, "done": False})
    out.append({
        "model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}, "done": True,
        "done_reason": reply.done_reason, "total_duration": 4_883_583_458, "load_duration": 1_334_875,
        "prompt_eval_count": 26, "prompt_eval_duration": 342_546_000, "eval_count": 42,
        "eval_duration": 4_535_599_000,
    })  # fmt: skip
    return out


def _merge(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming answer: the final chunk carrying the whole message."""
    final = dict(lines[-1])
    content = "".join(line["message"]["content"] for line in lines)
    calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
    final["message"] = {"role": "assistant", "content": content, **({"tool_calls": calls} if calls else {})}
    return final
