"""A scripted stand-in for the Ollama server speaking its real wire format (/api/chat NDJSON, /api/show,
/api/create).

Each test queues replies and reads back the recorded request bodies. Formats follow Ollama's API docs and the
`ollama` client's types: streaming chunks carry model, created_at, message{role, content, tool_calls?}, done;
the last one adds done_reason and the durations/counters. Errors are {"error": "..."} with the HTTP status.

A reply can be scripted to misbehave the way a real server can: a slow first byte (`delay_s`), a pause between
chunks (`interval_s`), an HTTP error (`error` + `status`: 404 model not found, 503 "server busy"), an error
line inside the stream (`stream_error`), `done_reason` "length", or a cut stream (`cut`): "no_done" ends the
body cleanly without the final `done` chunk, "mid_line" ends it inside a JSON line, "drop" closes the
connection in the middle of the chunked body.

/api/create follows Ollama's server/create.go (CreateHandler, streamResponse): a body that is not a
CreateRequest, an invalid name, neither `from` nor `files`, or a template that does not parse (checked by
bench/go_template.py, whose subset also refuses Go syntax it lacks) is an HTTP 400 {"error"} before any
line; a `from` Ollama does not have is pulled from the registry, which here has nothing: "pulling manifest"
then an {"error"} line in the 200 stream (HTTP 500 with `stream` false). A created model
keeps its base's weights and parameters (those given replace them), takes the new template, and is then served
by /api/show (capabilities from its template, details.parent_model) and /api/chat like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.go_template import TemplateError, parse
from bench.ollama_render import LLAMA31_TEMPLATE

LLAMA_STOPS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Ollama's model name: [host/][namespace/]model[:tag], parts of letters, digits, `_`, `.`, `-` (80 at most).
NAME = re.compile(r"^(?:[\w.-]+/){0,2}[A-Za-z0-9_][\w.-]{0,79}(?::[A-Za-z0-9_][\w.-]{0,79})?$")
GO_TYPES = {"model": "string", "name": "string", "from": "string", "template": "string", "system": "string",
            "parameters": "map[string]interface {}", "files": "map[string]string",
            "stream": "bool"}  # fmt: skip


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
    create_requests: list[dict[str, Any]] = field(default_factory=list)  # every /api/create body, in order
    created: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> template, parameters, parent

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/chat", self._chat, methods=["POST"]),
                                 Route("/api/show", self._show, methods=["POST"]),
                                 Route("/api/create", self._create, methods=["POST"])])  # fmt: skip

    def template(self, name: str) -> str:
        """The model's chat template: its own when created here; Ollama's llama3.1 for a tools model."""
        if name in self.created:
            return str(self.created[name]["template"])
        return LLAMA31_TEMPLATE if "tools" in self.models[name] else "{{ .Prompt }}"

    def parameters(self, name: str) -> dict[str, Any]:
        if name in self.created:
            return dict(self.created[name]["parameters"])
        return {"stop": list(LLAMA_STOPS)}

    async def _show(self, request: Request) -> Response:
        body = await request.json()
        self.show_requests.append(body)
        name = body.get("model") or body.get("name", "")
        if name not in self.models:
            return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)
        caps, parent = self.models[name], self.created.get(name, {}).get("parent", "")
        return JSONResponse({
            "modelfile": f"FROM {parent or name}", "parameters": _show_parameters(self.parameters(name)),
            "template": self.template(name),
            "details": {"parent_model": parent, "format": "gguf", "family": "llama", "families": ["llama"],
                        "parameter_size": "8.0B", "quantization_level": "Q5_K_M"},
            "model_info": {"general.architecture": "llama"},
            "capabilities": caps, "modified_at": "2025-01-01T00:00:00Z",
        })  # fmt: skip

    async def _create(self, request: Request) -> Response:
        raw = await request.body()
        if not raw.strip():
            return JSONResponse({"error": "missing request body"}, status_code=400)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return JSONResponse({"error": f"invalid JSON: {exc}"}, status_code=400)
        if not isinstance(body, dict):
            error = f"json: cannot unmarshal {_json_type(body)} into Go value of type api.CreateRequest"
            return JSONResponse({"error": error}, status_code=400)
        for key, go_type in GO_TYPES.items():
            kind = {"string": str, "bool": bool}.get(go_type, dict)
            if body.get(key) is not None and not isinstance(body[key], kind):
                error = (f"json: cannot unmarshal {_json_type(body[key])} into Go struct field "
                         f"CreateRequest.{key} of type {go_type}")  # fmt: skip
                return JSONResponse({"error": error}, status_code=400)
        self.create_requests.append(body)
        name, source = str(body.get("model") or body.get("name") or ""), str(body.get("from") or "")
        if not NAME.match(name):
            return JSONResponse({"error": "invalid model name"}, status_code=400)
        if not source:
            error = (
                "neither 'from' or 'files' was specified"
                if not body.get("files")
                else "files: not in the double"
            )
            return JSONResponse({"error": error}, status_code=400)
        stream = body.get("stream") is not False
        if source not in self.models:  # Ollama pulls it from the registry, which has no such model here
            error = "pull model manifest: file does not exist"
            if not stream:
                return JSONResponse({"error": error}, status_code=500)
            return _ndjson_lines([{"status": "pulling manifest"}, {"error": error}])
        template = body.get("template") or self.template(source)
        try:
            parse(template)
        except TemplateError as exc:
            return JSONResponse({"error": f"template error: {exc}"}, status_code=400)
        parameters = {**self.parameters(source), **(body.get("parameters") or {})}
        lines = [{"status": f"using existing layer sha256:{_digest(source + ' weights')}"},
                 {"status": f"using existing layer sha256:{_digest(source + ' license')}"}]  # fmt: skip
        for new in ([template] if body.get("template") else []) + [json.dumps(parameters, sort_keys=True)]:
            seen = any(
                new in (c["template"], json.dumps(c["parameters"], sort_keys=True))
                for c in self.created.values()
            )
            lines.append(
                {"status": f"{'using existing' if seen else 'creating new'} layer sha256:{_digest(new)}"}
            )
        lines += [{"status": "writing manifest"}, {"status": "success"}]
        self.created[name] = {"template": template, "parameters": parameters, "parent": source}
        self.models[name] = ["completion"] + (["tools"] if re.search(r"\.Tools\b", template) else [])
        return _ndjson_lines(lines) if stream else JSONResponse(lines[-1])

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


def _show_parameters(parameters: dict[str, Any]) -> str:
    """/api/show's `parameters` text: one `name value` line per value, the name padded to 30 (Go's %#v)."""
    values = [(k, v) for k, vs in parameters.items() for v in (vs if isinstance(vs, list) else [vs])]
    return "\n".join(f"{k:<30} {json.dumps(v) if isinstance(v, str) else v}" for k, v in values)


def _json_type(value: Any) -> str:
    """The JSON kind Go's decoder names in its errors."""
    kinds = ((bool, "bool"), (str, "string"), (int | float, "number"), (list, "array"), (dict, "object"))
    return next(name for kind, name in kinds if isinstance(value, kind))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _ndjson_lines(lines: list[dict[str, Any]]) -> StreamingResponse:
    async def body() -> Any:
        for line in lines:
            yield json.dumps(line) + "\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")


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
