"""ChatOllama from settings, tool-mode detection, JSON-mode tool calls for tool-less models, clear errors.

Every model failure is a ModelUnavailable with a category (FailureCategory) and a message saying what
happened and what to do; chat outcomes are kept in a small in-process window so the health check reflects
whether chatting actually works, not only whether /api/show answers.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import httpx
import ollama
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_ollama import ChatOllama
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun

    from config import Settings

ToolMode = Literal["native", "json"]
LlmStatus = Literal["ok", "down", "model_missing", "failing"]
log = logging.getLogger(__name__)

JSON_RETRIES = 1  # a JSON-mode reply with an unknown tool or malformed arguments goes back to the model once


class FailureCategory(StrEnum):
    """Why a model call failed; the health check, the logs and the trader's message use these."""

    DOWN = "down"  # the server is not reachable or failed before answering
    SLOW = "slow"  # no answer (or no next chunk) within llm.request_timeout
    MODEL_MISSING = "model_missing"  # the model is not installed, or cannot do what the mode needs
    TRUNCATED = "truncated"  # the answer stopped before its end: no `done` chunk, done_reason "length", cut
    BAD_REPLY = "bad_reply"  # a reply that cannot be used (unreadable, unknown tool, malformed arguments)
    OVERLOADED = "overloaded"  # the server refused for load (HTTP 503/429, "server busy")


class ModelUnavailable(Exception):
    """A model call that gave no usable answer. str() is the trader-facing explanation (what happened and
    what to do), `category` the FailureCategory."""

    def __init__(self, message: str, category: FailureCategory = FailureCategory.DOWN) -> None:
        super().__init__(message)
        self.category = FailureCategory(category)

    @property
    def message(self) -> str:
        return str(self)

    @classmethod
    def unexpected(cls, exc: BaseException) -> ModelUnavailable:
        """Any other failure of a model call, named without its internals (the log has those)."""
        return cls(
            f"the model call failed unexpectedly ({type(exc).__name__}); the server log has the details",
            FailureCategory.BAD_REPLY,
        )


# ---------------------------------------------------------------- recent chat outcomes (for /api/health)


@dataclass
class ChatOutcomes:
    """The last `size` chat calls of one model on one server (within `max_age_s`), in this process."""

    size: int = 5
    max_age_s: float = 300.0
    calls: deque[tuple[float, ModelUnavailable | None]] = field(default_factory=deque)

    def record(self, failure: ModelUnavailable | None) -> None:
        self.calls.append((time.monotonic(), failure))
        while len(self.calls) > self.size:
            self.calls.popleft()

    def recent(self) -> list[ModelUnavailable | None]:
        oldest = time.monotonic() - self.max_age_s
        return [outcome for at, outcome in self.calls if at >= oldest]

    def failing(self) -> ModelUnavailable | None:
        """The latest failure when the last call failed or most recent calls did; None when chat works."""
        recent = self.recent()
        failures = [f for f in recent if f is not None]
        if not failures or (recent[-1] is None and 2 * len(failures) <= len(recent)):
            return None
        return failures[-1]


_OUTCOMES: dict[tuple[str, str], ChatOutcomes] = {}


def chat_outcomes(base_url: str, model: str) -> ChatOutcomes:
    return _OUTCOMES.setdefault((base_url.rstrip("/"), model), ChatOutcomes())


def recent_chat_failure(settings: Settings) -> ModelUnavailable | None:
    """The failure that makes chat look broken right now (see ChatOutcomes.failing), if any."""
    return chat_outcomes(settings.llm.base_url, settings.llm.model).failing()


def reset_chat_outcomes() -> None:
    """Forget every recorded outcome (tests)."""
    _OUTCOMES.clear()


# ---------------------------------------------------------------- messages


def _down(base_url: str) -> str:
    return (
        f"the model server at {base_url} is not reachable (is Ollama running? `ollama serve`). "
        "Slash commands such as /signal or /portfolio still work (/help)."
    )


def _missing(model: str, base_url: str) -> str:
    return f"model '{model}' is not installed on {base_url}: run `ollama pull {model}`"


def _slow(base_url: str, timeout: float | None) -> str:
    limit = f" ({timeout:g} s, llm.request_timeout)" if timeout else ""
    return (
        f"the model server at {base_url} did not answer within the timeout{limit}; it may still be loading "
        "the model or be busy: try again in a moment"
    )


def _overloaded(base_url: str, detail: str) -> str:
    return f"the model server at {base_url} is overloaded ({detail}): try again in a moment"


def _cut(how: str) -> str:
    return f"the answer was cut off before its end ({how}); nothing of it was kept: ask again"


def _too_long(num_predict: int | None) -> str:
    limit = f"{num_predict} tokens, " if num_predict else ""
    return (
        f"the answer was cut off at the length limit ({limit}inference.max_tokens, or the context window "
        "llm.num_ctx): ask for a shorter answer, or raise inference.max_tokens"
    )


def _bad_reply(problem: str, retried: bool) -> str:
    told = ", also after it was told what was wrong" if retried else ""
    return (
        f"the model's reply could not be used ({problem}){told}; "
        "ask again in other words, or use a slash command (/help)"
    )


async def _show(settings: Settings) -> dict[str, Any]:
    url = settings.llm.base_url.rstrip("/") + "/api/show"
    timeout = min(settings.llm.request_timeout, 10.0)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, json={"model": settings.llm.model})
    except httpx.TimeoutException:
        raise ModelUnavailable(_slow(settings.llm.base_url, timeout), FailureCategory.SLOW) from None
    except httpx.HTTPError:
        raise ModelUnavailable(_down(settings.llm.base_url), FailureCategory.DOWN) from None
    if response.status_code == 404:
        raise ModelUnavailable(
            _missing(settings.llm.model, settings.llm.base_url), FailureCategory.MODEL_MISSING
        )
    if response.status_code in (429, 503):
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        raise ModelUnavailable(_overloaded(settings.llm.base_url, detail), FailureCategory.OVERLOADED)
    if response.status_code >= 400:
        raise ModelUnavailable(f"the model server answered {response.status_code}: {response.text[:200]}")
    result: dict[str, Any] = response.json()
    return result


async def detect_tool_mode(settings: Settings) -> ToolMode:
    """settings.llm.tool_mode when forced; in auto, "native" iff Ollama's /api/show lists "tools"."""
    if settings.llm.tool_mode != "auto":
        return settings.llm.tool_mode
    info = await _show(settings)
    caps = info.get("capabilities")
    if caps is None:  # Ollama before capabilities: a template that renders .Tools supports them
        return "native" if ".Tools" in (info.get("template") or "") else "json"
    return "native" if "tools" in caps else "json"


async def model_status(settings: Settings) -> LlmStatus:
    """For the health endpoint: is the configured model servable right now? "failing" when /api/show
    answers but the recent chat calls failed (recent_chat_failure says how)."""
    try:
        await _show(settings)
    except ModelUnavailable as exc:
        return "model_missing" if exc.category is FailureCategory.MODEL_MISSING else "down"
    return "failing" if recent_chat_failure(settings) is not None else "ok"


async def warm_up(settings: Settings) -> str:
    """Load the model now (Ollama loads it on a chat with no messages), with the context size we use, so
    the trader's first question does not pay for loading the weights; `keep_alive` keeps it loaded."""
    llm = settings.llm
    body = {"model": llm.model, "messages": [], "stream": False, "keep_alive": llm.keep_alive,
            "options": {"num_ctx": llm.num_ctx}}  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=llm.base_url, timeout=llm.request_timeout) as client:
            response = await client.post("/api/chat", json=body)
    except httpx.HTTPError:
        return "not loaded: " + _down(llm.base_url)
    if response.status_code == 404:
        return "not loaded: " + _missing(llm.model, llm.base_url)
    if response.is_error:
        return f"not loaded: the model server answered {response.status_code}: {response.text[:200]}"
    return f"loaded {llm.model} (keep_alive {llm.keep_alive})"


# ---------------------------------------------------------------- JSON tool mode


def tool_call_schema(names: Sequence[str]) -> dict[str, Any]:
    """The `format` JSON schema that makes a model without native tools answer with tool calls."""
    call = {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": list(names)}, "arguments": {"type": "object"}},
        "required": ["name", "arguments"],
    }
    return {
        "type": "object",
        "properties": {"tool_calls": {"type": "array", "items": call}, "content": {"type": "string"}},
        "required": ["tool_calls", "content"],
    }


def _json_instructions(tools: list[dict[str, Any]]) -> str:
    specs = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
              "parameters": t["function"].get("parameters", {})} for t in tools]  # fmt: skip
    return (
        '## Tool calling (JSON)\nAnswer ONLY with a JSON object {"tool_calls": [{"name": ..., "arguments": '
        '{...}}], "content": "..."}. To use a tool, list it in tool_calls and leave content empty; to answer '
        "the trader, give tool_calls [] and the answer in content. Tools:\n"
        + json.dumps(specs, ensure_ascii=False)
    )


def _to_json_mode(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> list[BaseMessage]:
    """Rewrite tool traffic as plain roles: a model without tools can't render tool messages."""
    out: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
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


def check_tool_calls(value: Any, names: Sequence[str]) -> tuple[list[dict[str, Any]], str | None]:
    """The JSON-mode `tool_calls` value as LangChain tool calls, or what is wrong with it."""
    if value is None:
        return [], None
    if not isinstance(value, list):
        return [], f"tool_calls must be a list, not {_JSON_TYPES.get(type(value), 'that')}"
    calls, problems = [], []
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
            calls.append({"name": name, "args": args or {}, "id": f"call_{uuid.uuid4().hex[:12]}",
                          "type": "tool_call"})  # fmt: skip
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
        self.values: dict[str, Any] = {}  # other top-level values, decoded when complete
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


class CopilotChatOllama(ChatOllama):
    """ChatOllama that raises categorised ModelUnavailable errors (a cut or length-limited stream is one),
    records each call's outcome for the health check and, in JSON tool mode, gets tool calls through
    `format` while streaming the answer text as it is generated."""

    tool_mode: Literal["auto", "native", "json"] = "native"
    _resolved: ToolMode | None = PrivateAttr(default=None)

    async def resolved_mode(self) -> ToolMode:
        if self._resolved is None:
            if self.tool_mode == "auto":
                show = _settings_like(self)
                self._resolved = await detect_tool_mode(show)
            else:
                self._resolved = self.tool_mode
        return self._resolved

    @property
    def _base(self) -> str:
        return self.base_url or "http://localhost:11434"

    def _convert_messages_to_ollama_messages(self, messages: list[BaseMessage]) -> Sequence[Any]:
        """LangChain's conversion, plus `tool_name` on tool results (Ollama's field for which tool answered;
        templates such as Qwen's and Llama 3.x's can show it)."""
        converted = list(super()._convert_messages_to_ollama_messages(messages))
        for source, target in zip(messages, converted, strict=True):
            if isinstance(source, ToolMessage) and source.name and isinstance(target, dict):
                target["tool_name"] = source.name
        return converted

    def _record(self, failure: ModelUnavailable | None) -> None:
        chat_outcomes(self._base, self.model).record(failure)
        if failure is not None:
            log.warning("model call failed [%s]: %s", failure.category.value, failure)

    def _translate(self, exc: Exception, answered: bool = False) -> ModelUnavailable:
        """A client-side exception as a categorised ModelUnavailable; `answered`: part of the reply came."""
        base = self._base
        if isinstance(exc, ModelUnavailable):
            return exc
        if isinstance(exc, httpx.TimeoutException):
            timeout = (self.client_kwargs or {}).get("timeout")
            return ModelUnavailable(
                _slow(base, float(timeout) if isinstance(timeout, int | float) else None),
                FailureCategory.SLOW,
            )
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return ModelUnavailable(_down(base), FailureCategory.DOWN)
        if isinstance(exc, ollama.ResponseError):
            return self._response_error(exc)
        if isinstance(exc, httpx.TransportError):  # RemoteProtocolError, ReadError: the connection dropped
            if answered:
                return ModelUnavailable(
                    _cut("the model server dropped the connection"), FailureCategory.TRUNCATED
                )
            return ModelUnavailable(
                f"the model server at {base} closed the connection before answering: try again in a moment",
                FailureCategory.DOWN,
            )
        if isinstance(exc, json.JSONDecodeError):  # the ollama client reads NDJSON line by line
            return ModelUnavailable(_cut("the reply stopped inside a line"), FailureCategory.TRUNCATED)
        return ModelUnavailable(
            f"the model server at {base} sent a reply the copilot cannot read ({type(exc).__name__})",
            FailureCategory.BAD_REPLY,
        )

    def _response_error(self, exc: ollama.ResponseError) -> ModelUnavailable:
        base, error, status = self._base, str(exc.error), exc.status_code
        low = error.lower()
        if "does not support tools" in low:
            return ModelUnavailable(
                f"model '{self.model}' does not support native tool calling; "
                "set llm.tool_mode to json or auto",
                FailureCategory.MODEL_MISSING,
            )
        if status == 404 or "not found" in low:
            return ModelUnavailable(_missing(self.model, base), FailureCategory.MODEL_MISSING)
        if status in (429, 503) or "server busy" in low or "maximum pending" in low:
            detail = f"HTTP {status}: {error}" if status > 0 else error
            return ModelUnavailable(_overloaded(base, detail), FailureCategory.OVERLOADED)
        if "timed out" in low:
            return ModelUnavailable(
                f"the model server at {base} timed out ({error}); it may still be loading the model: "
                "try again in a moment",
                FailureCategory.SLOW,
            )
        if status < 0:  # an {"error": ...} line inside a 200 stream: generation stopped midway
            return ModelUnavailable(_cut(f"the model server reported: {error}"), FailureCategory.TRUNCATED)
        return ModelUnavailable(
            f"the model server at {base} returned an error (HTTP {status}: {error})", FailureCategory.DOWN
        )

    async def _acreate_chat_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Mapping[str, Any] | str]:
        """Ollama's parts as they come; a reply without its final `done` part, or one that stopped at the
        length limit, raises TRUNCATED after its last part (so it is never taken for a whole answer)."""
        answered, final = False, None
        try:
            async for part in super()._acreate_chat_stream(messages, stop, **kwargs):
                answered = True
                if not isinstance(part, str) and part.get("done"):
                    final = part
                yield part
        except Exception as exc:
            raise self._translate(exc, answered) from exc
        if final is None:
            how = "the model server ended its reply without the final `done` message"
            raise ModelUnavailable(_cut(how), FailureCategory.TRUNCATED)
        if final.get("done_reason") == "length":
            raise ModelUnavailable(_too_long(self.num_predict), FailureCategory.TRUNCATED)

    async def _json_mode(self, kwargs: dict[str, Any]) -> bool:
        return bool(kwargs.get("tools")) and await self.resolved_mode() == "json"

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        try:
            if await self._json_mode(kwargs):
                stream = self._json_stream(messages, stop, run_manager, kwargs)
            else:
                stream = aiter_closing(super()._astream(messages, stop, run_manager, **kwargs))
            async with aclosing(stream):
                async for chunk in stream:
                    yield chunk
        except ModelUnavailable as exc:
            self._record(exc)
            raise
        self._record(None)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            json_mode = await self._json_mode(kwargs)
            if not json_mode:
                result = await super()._agenerate(messages, stop, run_manager, **kwargs)
        except ModelUnavailable as exc:
            self._record(exc)
            raise
        if json_mode:  # the same path as streaming (it records the outcome itself)
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        self._record(None)
        return result

    async def _json_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The JSON-mode reply parsed as it streams: the `content` text as it is generated, the tool calls
        when their array is complete. Unknown tools or non-object arguments (or invalid JSON, when nothing
        was shown yet) go back to the model once (JSON_RETRIES) before becoming a BAD_REPLY."""
        kwargs = dict(kwargs)
        tools: list[dict[str, Any]] = kwargs.pop("tools")
        names = [t["function"]["name"] for t in tools]
        prompt, schema = _to_json_mode(messages, tools), tool_call_schema(names)
        for attempt in range(JSON_RETRIES + 1):
            parser, problem, shown = JsonReplyParser(), None, False
            held: list[str] = []
            calls_checked, called, final = False, False, None
            stream = aiter_closing(self._acreate_chat_stream(prompt, stop, format=schema, **kwargs))
            async with aclosing(stream):
                async for part in stream:
                    if isinstance(part, str):
                        continue
                    if part.get("done"):
                        final = part
                    message = part.get("message")
                    piece = (message.get("content") if message is not None else None) or ""
                    for kind, value in parser.feed(piece):
                        if kind == "tool_calls":
                            calls, problem = check_tool_calls(value, names)
                            if problem:
                                break
                            calls_checked = True
                            texts, held = [*held], []
                            if calls:
                                shown = called = True
                                yield _calls_chunk(calls)
                        elif calls_checked or parser.plain:
                            texts = [value]
                        else:  # text before the tool calls were checked: held until they are
                            held.append(value)
                            continue
                        for text in texts:
                            shown = True
                            if run_manager:
                                await run_manager.on_llm_new_token(text)
                            yield ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if problem:
                        break  # closing the stream stops the generation on the server
            problem = problem or parser.finish()
            if problem is None and not called and not parser.plain and not parser.content.strip():
                problem = "it had neither a tool call nor an answer in content"
            if problem is None:
                if held:
                    yield ChatGenerationChunk(message=AIMessageChunk(content="".join(held)))
                yield _final_chunk(final)
                return
            if shown or attempt == JSON_RETRIES:
                raise ModelUnavailable(_bad_reply(problem, attempt > 0), FailureCategory.BAD_REPLY)
            log.info("JSON-mode reply rejected (%s): asking the model again", problem)
            retry = RETRY_PROMPT.format(problem=problem, names=", ".join(names))
            prompt = [*prompt, AIMessage(parser.text), HumanMessage(retry)]


def _calls_chunk(calls: list[dict[str, Any]]) -> ChatGenerationChunk:
    chunks = [
        {"name": c["name"], "args": json.dumps(c["args"], ensure_ascii=False), "id": c["id"], "index": i,
         "type": "tool_call_chunk"}
        for i, c in enumerate(calls)
    ]  # fmt: skip
    return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks))


def _final_chunk(final: Mapping[str, Any] | None) -> ChatGenerationChunk:
    """The closing chunk: Ollama's done_reason, durations and token counts, like ChatOllama's last one."""
    info = {k: v for k, v in dict(final or {}).items() if k != "message"}
    if "model" in info:
        info["model_name"] = info["model"]
    info["model_provider"] = "ollama"
    usage = None
    if final is not None and final.get("prompt_eval_count") is not None:
        inputs, outputs = int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)
        usage = UsageMetadata(input_tokens=inputs, output_tokens=outputs, total_tokens=inputs + outputs)
    return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage), generation_info=info)


def aiter_closing(stream: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """The stream as an async generator, so `aclosing` can close it (and the HTTP response with it)."""
    if isinstance(stream, AsyncGenerator):
        return stream

    async def relay() -> AsyncGenerator[Any, None]:
        async for item in stream:
            yield item

    return relay()


def _settings_like(model: CopilotChatOllama) -> Any:
    """The few settings detect_tool_mode reads, rebuilt from the model's own fields."""
    from types import SimpleNamespace

    timeout = float((model.client_kwargs or {}).get("timeout", 10.0))
    llm = SimpleNamespace(tool_mode="auto", base_url=model.base_url or "http://localhost:11434",
                          model=model.model, request_timeout=timeout)  # fmt: skip
    return SimpleNamespace(llm=llm)


def build_chat_model(
    settings: Settings, tool_mode: Literal["auto", "native", "json"] | None = None
) -> CopilotChatOllama:
    """ChatOllama with the configured options; tool_mode defaults to settings.llm.tool_mode (auto asks)."""
    inference = settings.inference
    return CopilotChatOllama(
        model=settings.llm.model,
        base_url=settings.llm.base_url,
        temperature=inference.temperature,
        top_p=inference.top_p,
        num_predict=inference.max_tokens,
        num_ctx=settings.llm.num_ctx,
        repeat_penalty=inference.repeat_penalty,
        keep_alive=settings.llm.keep_alive,
        stop=inference.stop_sequences or None,
        client_kwargs={"timeout": settings.llm.request_timeout},
        tool_mode=tool_mode or settings.llm.tool_mode,
    )
