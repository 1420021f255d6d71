"""A zero-latency Ollama stand-in for the benches: Ollama's wire format, a fixed script, no model.

Usage: .venv/bin/python -m bench.ollama_standin --port 11434

POST /api/chat answers at once, NDJSON when `stream` is true (the default) else one JSON object; a chat with
no messages is Ollama's "load" request (done_reason "load"). POST /api/show lists the capabilities
["completion", "tools"], so `tool_mode: auto` picks native tool calls. The script decides from the last
message alone: after a user message the model calls `get_portfolio` (no arguments); after a tool message
it answers with a short text. So every free-text turn is model -> get_portfolio -> model, for any agent
that has a tool of that name.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TOOL = "get_portfolio"
ANSWER = ["Your account is flat: ", "balance 10,000 USD, ", "no open positions, ", "risk budget unused."]
# The counters a real final chunk carries (langchain_ollama reads them into usage_metadata).
DONE = {
    "total_duration": 1_000_000,
    "load_duration": 1_000,
    "prompt_eval_count": 100,
    "prompt_eval_duration": 500_000,
    "eval_count": 20,
    "eval_duration": 400_000,
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _line(model: str, message: dict[str, Any], done: bool) -> dict[str, Any]:
    line = {"model": model, "created_at": _now(), "message": {"role": "assistant", **message}, "done": done}
    if done:
        line.update(done_reason="stop", **DONE)
    return line


def script(model: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The NDJSON lines of one answer: a tool call after a user message, a short text after a tool one."""
    if messages[-1].get("role") == "tool":
        lines = [_line(model, {"content": piece}, False) for piece in ANSWER]
    else:
        call = {"function": {"name": TOOL, "arguments": {}}}
        lines = [_line(model, {"content": "", "tool_calls": [call]}, False)]
    return [*lines, _line(model, {"content": ""}, True)]


def _merged(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming answer: the final line carrying the whole message."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(x["message"]["content"] for x in lines),
    }
    calls = [c for x in lines for c in x["message"].get("tool_calls", [])]
    if calls:
        message["tool_calls"] = calls
    return {**lines[-1], "message": message}


async def chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if not body.get("messages"):  # Ollama loads the model and says so
        return JSONResponse(
            {
                "model": model,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load",
                "done": True,
            }
        )
    lines = script(model, body["messages"])
    if not body.get("stream", True):
        return JSONResponse(_merged(lines))

    async def ndjson() -> AsyncIterator[bytes]:
        for line in lines:
            yield (json.dumps(line) + "\n").encode()

    return StreamingResponse(ndjson(), media_type="application/x-ndjson")


async def show(request: Request) -> Response:
    body = await request.json()
    name = str(body.get("model") or body.get("name") or "")
    return JSONResponse(
        {
            "modelfile": f"FROM {name}",
            "parameters": "",
            "template": "{{ if .Tools }}tools{{ end }}{{ .Prompt }}",
            "details": {
                "format": "gguf",
                "family": "llama",
                "parameter_size": "8.0B",
                "quantization_level": "Q5_K_M",
            },
            "model_info": {"general.architecture": "llama"},
            "capabilities": ["completion", "tools"],
        }
    )


def standin_app() -> Starlette:
    return Starlette(
        routes=[Route("/api/chat", chat, methods=["POST"]), Route("/api/show", show, methods=["POST"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=11434)
    args = parser.parse_args()
    uvicorn.run(standin_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
