"""JSON tool mode for models without native tool calling: the `format` schema, the instructions, and an
incremental parser that streams the answer text and emits tool calls once complete."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.utils.function_calling import ToolDescription
from pydantic import JsonValue


def tool_call_schema(names: Sequence[str], calls: bool = True) -> dict[str, JsonValue]:
    """The `format` JSON schema that makes a model without native tools answer with tool calls; with
    `calls` False the same shape with `tool_calls` always empty (an answer in `content` only)."""
    call: dict[str, JsonValue] = {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": list(names)}, "arguments": {"type": "object"}},
        "required": ["name", "arguments"],
    }
    array: dict[str, JsonValue] = {"type": "array", "items": call}
    if not calls:
        array["maxItems"] = 0
    return {
        "type": "object",
        "properties": {"tool_calls": array, "content": {"type": "string"}},
        "required": ["tool_calls", "content"],
    }


def _json_instructions(tools: list[ToolDescription]) -> str:
    specs = [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "parameters": t["function"].get("parameters", {}),
        }
        for t in tools
    ]
    return (
        '## Tool calling (JSON)\nAnswer ONLY with a JSON object {"tool_calls": [{"name": ..., "arguments": '
        '{...}}], "content": "..."}. To use a tool, list it in tool_calls and leave content empty; to answer '
        "the trader, give tool_calls [] and the answer in content. Tools:\n"
        + json.dumps(specs, ensure_ascii=False)
    )


# On an AIMessage answered in JSON mode: the reply text exactly as the model generated it.
JSON_REPLY = "json_reply"


def to_json_mode(messages: list[BaseMessage], tools: list[ToolDescription]) -> list[BaseMessage]:
    """Rewrite tool traffic as plain roles: a model without tools can't render tool messages. An answer the
    model gave in JSON mode goes back as it generated it (JSON_REPLY), so a server's KV cache, which holds
    those very tokens, still matches the prompt through the end of that answer."""
    out: list[BaseMessage] = []
    for m in messages:
        raw = m.additional_kwargs.get(JSON_REPLY) if isinstance(m, AIMessage) else None
        if isinstance(raw, str) and raw:
            out.append(AIMessage(raw))
        elif isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"name": c["name"], "arguments": c["args"]} for c in m.tool_calls]
            out.append(AIMessage(json.dumps({"tool_calls": calls, "content": m.text}, ensure_ascii=False)))
        elif isinstance(m, ToolMessage):
            out.append(HumanMessage(f"Tool result ({m.name or m.tool_call_id}):\n{m.text}"))
        else:
            out.append(m)
    # The tool list is as static as the system prompt, so it goes right after it to keep the prefix stable.
    at = 1 if out and isinstance(out[0], SystemMessage) else 0
    return [*out[:at], SystemMessage(_json_instructions(tools)), *out[at:]]


_JSON_TYPES = {str: "a string", list: "a list", int: "a number", float: "a number", bool: "a boolean"}


def check_tool_calls(value: Any, names: Sequence[str]) -> tuple[list[ToolCall], str | None]:
    """The JSON-mode `tool_calls` value as LangChain tool calls, or what is wrong with it."""
    if value is None:
        return [], None
    if not isinstance(value, list):
        return [], f"tool_calls must be a list, not {_JSON_TYPES.get(type(value), 'that')}"
    calls: list[ToolCall] = []
    problems: list[str] = []
    for item in value:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(name, str):
            problems.append('each tool call must be an object with a "name"')
            continue
        args = item.get("arguments")
        if name not in names:
            problems.append(f"there is no tool named {name!r} (the tools are: {', '.join(names)})")
        elif args is not None and not isinstance(args, dict):
            kind = _JSON_TYPES.get(type(args), "not an object")
            problems.append(f"the arguments of {name!r} must be a JSON object, not {kind}")
        else:
            call_id = f"call_{uuid.uuid4().hex[:12]}"
            calls.append(ToolCall(name=name, args=args or {}, id=call_id, type="tool_call"))
    return calls, "; ".join(problems) or None


def parse_json_reply(text: str, names: set[str]) -> AIMessage:
    """A whole JSON-mode answer as an AIMessage with .tool_calls (invalid calls dropped)."""
    parser = JsonReplyParser()
    parser.feed(text)
    if parser.plain or parser.finish() is not None:
        return AIMessage(text)  # the model ignored the format: treat it as a plain answer
    calls, _ = check_tool_calls(parser.values.get("tool_calls"), sorted(names))
    return AIMessage(parser.content, tool_calls=calls)


_WS = " \t\r\n"


class JsonReplyParser:
    """Incremental parse of the JSON-mode reply {"tool_calls": [...], "content": "..."} as it streams.

    feed(piece) returns what became known with that piece: ("text", decoded characters of `content`) as they
    arrive, ("tool_calls", the decoded list) once its closing bracket came. A reply not starting with "{" is
    plain text (the model ignored the format) and passes through as ("text", piece). finish() says whether
    the whole reply was one valid JSON object.
    """

    def __init__(self) -> None:
        self.text = ""  # everything received
        self.content = ""  # the `content` string decoded so far
        self.values: dict[str, JsonValue] = {}  # other top-level values, decoded when complete
        self.plain = False
        self._i = 0  # next character of self.text to look at
        self._state = "start"  # start|plain|key_or_end|key|colon|value|string|raw|comma_or_end|end|invalid
        self._key = ""
        self._raw_start = 0  # raw scan (a key, or a value other than the content string)
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._error = ""
        self._out: list[tuple[str, Any]] = []  # what the current feed() found, in order

    def feed(self, piece: str) -> list[tuple[str, Any]]:
        self.text += piece
        out = self._out = []
        text, n = self.text, len(self.text)
        while self._i < n and self._state != "invalid":
            c, state = text[self._i], self._state
            if state == "plain":
                out.append(("text", text[self._i :]))
                self._i = n
            elif state == "string":
                self._string(out)
                if self._state == "string":
                    break  # waiting for the rest of an escape sequence
            elif state in ("key", "raw"):
                self._raw(c)
            elif c in _WS:
                self._i += 1
            elif state == "start":
                self._state, self.plain = ("key_or_end", False) if c == "{" else ("plain", True)
                self._i += c == "{"
            elif state == "key_or_end" and c == '"':
                self._begin_raw("key")
            elif state in ("key_or_end", "comma_or_end") and c == "}":
                self._state, self._i = "end", self._i + 1
            elif state == "comma_or_end" and c == ",":
                self._state, self._i = "key_or_end", self._i + 1
            elif state == "colon" and c == ":":
                self._state, self._i = "value", self._i + 1
            elif state == "value" and c == '"' and self._key == "content":
                self._state, self._i = "string", self._i + 1
            elif state == "value":
                self._begin_raw("raw")
            else:
                self._fail(f"unexpected {c!r} at character {self._i}")
        return out

    def finish(self) -> str | None:
        """None when the reply was a complete JSON object (or plain text); otherwise what is wrong."""
        if self.plain:
            return None
        if self._state == "invalid":
            return f"it was not valid JSON: {self._error}"
        if self._state != "end":
            return "its JSON object was incomplete"
        try:
            json.loads(self.text)
        except json.JSONDecodeError as exc:
            return f"it was not valid JSON: {exc.msg} at character {exc.pos}"
        return None

    # -- internals

    def _fail(self, error: str) -> None:
        self._state, self._error = "invalid", error

    def _begin_raw(self, kind: str) -> None:
        self._state, self._raw_start, self._depth, self._in_str, self._esc = kind, self._i, 0, False, False

    def _raw(self, c: str) -> None:
        """One character of a raw scan: strings, nesting and scalars, without decoding."""
        i = self._i
        if self._in_str:
            if self._esc:
                self._esc = False
            elif c == "\\":
                self._esc = True
            elif c == '"':
                self._in_str = False
                if self._depth == 0:
                    return self._end_raw(i + 1)
        elif c == '"':
            self._in_str = True
        elif c in "{[":
            self._depth += 1
        elif c in "}]" and self._depth > 0:
            self._depth -= 1
            if self._depth == 0:
                return self._end_raw(i + 1)
        elif self._depth == 0 and (c in ",}]" or c in _WS):
            return self._end_raw(i)  # the end of a scalar (its delimiter is not part of it)
        self._i = i + 1
        return None

    def _end_raw(self, end: int) -> None:
        raw = self.text[self._raw_start : end]
        self._i = end
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return self._fail(f"{exc.msg} in {raw[:40]!r}")
        if self._state == "key":
            self._key, self._state = str(value), "colon"
            return None
        self.values[self._key], self._state = value, "comma_or_end"
        if self._key == "tool_calls":
            self._out.append(("tool_calls", value))
        elif self._key == "content" and value is not None:  # content that was not a string: as text
            self.content += str(value)
            self._out.append(("text", str(value)))
        return None

    def _string(self, out: list[tuple[str, Any]]) -> None:
        """Decode the content string as far as the text goes; stop before an incomplete escape."""
        text, n, i = self.text, len(self.text), self._i
        run: list[str] = []
        while i < n:
            c = text[i]
            if c == '"':
                self._state, i = "comma_or_end", i + 1
                break
            if c != "\\":
                run.append(c)
                i += 1
                continue
            end = _escape_end(text, i)
            if end is None:
                break  # the rest of the escape has not arrived yet
            try:
                run.append(json.loads('"' + text[i:end] + '"'))
            except json.JSONDecodeError:
                self._fail(f"bad escape {text[i:end]!r}")
                break
            i = end
        self._i = i
        if run:
            decoded = "".join(run)
            self.content += decoded
            out.append(("text", decoded))


def _escape_end(text: str, i: int) -> int | None:
    """End index of the escape sequence starting at text[i] == "\\", or None while it is incomplete."""
    n = len(text)
    if i + 1 >= n:
        return None
    if text[i + 1] != "u":
        return i + 2
    if i + 6 > n:
        return None
    code = text[i + 2 : i + 6]
    if not (_is_hex(code) and 0xD800 <= int(code, 16) <= 0xDBFF):
        return i + 6
    # A high surrogate: decoded together with the low half that follows it, if one does.
    after = text[i + 6 : i + 8]
    if len(after) < 2:
        return None if "\\u".startswith(after) else i + 6
    if after != "\\u":
        return i + 6
    return i + 12 if i + 12 <= n else None


def _is_hex(s: str) -> bool:
    return len(s) == 4 and all(c in "0123456789abcdefABCDEF" for c in s)


# ---------------------------------------------------------------- the chat model

RETRY_PROMPT = (
    "Your previous reply could not be used: {problem}. Answer again with the JSON object only, "
    '{{"tool_calls": [...], "content": "..."}}, using only these tools: {names}.'
)
