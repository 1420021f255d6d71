"""The tool schemas the model sees, pinned byte for byte: the native tool list bound to the chat model and the
JSON-mode instructions for a model without native tools. A refactor of the argument classes (the trade model,
its field names and aliases) must not change a byte of either; the expected files were written by the code
before that refactor (regenerate them only for a deliberate change of what the model is shown)."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_core.messages import SystemMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_ollama import ChatOllama

from graph.model.json_mode import to_json_mode
from tools.services import Services
from tools.trading_tools import make_tools

FIXTURES = Path(__file__).parent / "fixtures"


def native_bytes(services: Services) -> bytes:
    bound = ChatOllama(model="pinned").bind_tools(make_tools(services))
    tools = bound.kwargs["tools"]  # type: ignore[attr-defined]
    return json.dumps(tools, ensure_ascii=False, indent=1).encode() + b"\n"


def json_mode_bytes(services: Services) -> bytes:
    described = [convert_to_openai_tool(t) for t in make_tools(services)]
    prompt = to_json_mode([SystemMessage("system")], described)  # type: ignore[arg-type]
    return str(prompt[1].content).encode() + b"\n"


def test_the_native_tool_schemas_are_byte_identical(services: Services) -> None:
    assert native_bytes(services) == (FIXTURES / "tool_schemas_native.json").read_bytes()


def test_the_json_mode_tool_instructions_are_byte_identical(services: Services) -> None:
    assert json_mode_bytes(services) == (FIXTURES / "tool_schemas_json_mode.txt").read_bytes()
