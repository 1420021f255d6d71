"""ChatOpenAI for any OpenAI-compatible chat-completions server (vLLM, llama.cpp's llama-server,
llama-cpp-python, LM Studio, Ollama's /v1): the same categorised failures as the Ollama client, the answer
length bounded on every server, usage on every streamed reply, both tool modes, and the prompt fitted to
the context window by the server's own tokenizer where it has one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

import httpx
import openai
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.messages import AIMessageChunk, BaseMessage, ToolCallChunk
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr, SecretStr

from graph.model.errors import (
    FailureCategory,
    ModelUnavailable,
    bad_reply_message,
    cut_message,
    overloaded_message,
    slow_message,
    too_long_message,
)
from graph.model.json_mode import tool_call_schema
from graph.model.json_stream import Piece, RecordedCalls, aiter_closing, json_tool_stream
from graph.model.openai_server import Tokenizer, fit_to_context, openai_down_message, openai_missing_message

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun

    from config import Settings

log = logging.getLogger(__name__)

# How the JSON tool mode constrains the reply, tried in this order until the server takes one: OpenAI's
# structured output (vLLM, LM Studio, Ollama /v1, llama-server), the `json_object` + `schema` form
# (llama-cpp-python, llama-server), then the instructions in the prompt alone. llama-cpp-python takes only
# `json_object` (it answers HTTP 500 to `json_schema`): a server whose tokenizer route is its
# `/extras/tokenize` starts there. What a server took is remembered for the process (ACCEPTED).
FORMATS: tuple[str, ...] = ("json_schema", "json_object", "prompt")
ACCEPTED: dict[tuple[str, str], int] = {}  # (base URL, model) -> index into FORMATS


def response_format(kind: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": dict(schema)}}
    if kind == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    return None


class CopilotChatOpenAI(RecordedCalls, ChatOpenAI):
    """ChatOpenAI that raises categorised ModelUnavailable errors, records each call's outcome for the
    health check (RecordedCalls), sends `max_tokens` itself (ChatOpenAI sends only
    `max_completion_tokens`, which llama-cpp-python ignores), and repairs what OpenAI-compatible servers
    get wrong in streams."""

    tool_mode: Literal["auto", "native", "json"] = "native"
    num_ctx: int = 8192
    answer_tokens: int = 2048
    _json_tools: Any = PrivateAttr(default=None)  # the tools of the last JSON-mode call that had some
    _tokenizer: Tokenizer | None = PrivateAttr(default=None)
    _token_scale: float = PrivateAttr(default=1.0)

    @property
    def _base(self) -> str:
        return str(self.openai_api_base or "")

    @property
    def _served_model(self) -> str:
        return self.model_name

    @property
    def token_scale(self) -> float:
        """Real tokens per estimated token (prompts.system.approx_tokens), as last measured (≥ 1)."""
        return self._token_scale

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            secret = self.openai_api_key
            key = secret.get_secret_value() if isinstance(secret, SecretStr) else ""
            self._tokenizer = Tokenizer(self._base, self.model_name, key, min(self._timeout(), 10.0))
        return self._tokenizer

    def _timeout(self) -> float:
        return float(self.request_timeout) if isinstance(self.request_timeout, int | float) else 120.0

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Tools with an explicit tool_choice ("auto" unless told): llama-cpp-python's function-calling
        format ignores tools when no tool_choice is sent."""
        return super().bind_tools(tools, tool_choice=tool_choice or "auto", **kwargs)

    def _translate(self, exc: Exception, answered: bool = False) -> ModelUnavailable:
        """A client-side exception as a categorised ModelUnavailable; `answered`: part of the reply came."""
        base = self._base
        if isinstance(exc, ModelUnavailable):
            return exc
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | asyncio.TimeoutError):
            return ModelUnavailable(slow_message(base, self._timeout()), FailureCategory.SLOW)
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            if answered:
                how = "the model server dropped the connection"
                return ModelUnavailable(cut_message(how), FailureCategory.TRUNCATED)
            if not _refused(exc):  # llama-cpp-python drops a stream it cannot serve (auto tool choice)
                return Dropped(
                    f"the model server at {base} closed the connection before answering: its log says why",
                    FailureCategory.DOWN,
                )
            return ModelUnavailable(openai_down_message(base), FailureCategory.DOWN)
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        return ModelUnavailable(
            f"the model server at {base} sent a reply the copilot cannot read ({type(exc).__name__})",
            FailureCategory.BAD_REPLY,
        )

    def _status_error(self, exc: openai.APIStatusError) -> ModelUnavailable:
        base, status, error = self._base, exc.status_code, str(exc.message)[:300]
        low = error.lower()
        if "context" in low and ("exceed" in low or "length" in low or "too long" in low):
            return ModelUnavailable(
                f"the prompt did not fit the model's context window ({error}): lower llm.num_ctx to the "
                "server's context size, or start the server with a larger one",
                FailureCategory.TRUNCATED,
            )
        if status == 404 or "model_not_found" in low or ("model" in low and "not exist" in low):
            return ModelUnavailable(
                openai_missing_message(self.model_name, base), FailureCategory.MODEL_MISSING
            )
        if status in (401, 403):
            return ModelUnavailable(
                f"the model server at {base} refused the API key (HTTP {status}): check llm.api_key",
                FailureCategory.DOWN,
            )
        if status in (429, 503):
            return ModelUnavailable(
                overloaded_message(base, f"HTTP {status}: {error}"), FailureCategory.OVERLOADED
            )
        return ModelUnavailable(
            f"the model server at {base} returned an error (HTTP {status}: {error})", FailureCategory.DOWN
        )

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        """The answer length in both fields (`max_tokens` is the one llama-cpp-python and LM Studio read).
        An assistant turn that only called tools goes out with `content: ""`, not null: llama-cpp-python's
        chat templates concatenate the content and answer HTTP 500 to a null one (seen on a turn past
        `context.max_tool_rounds`, which is sent with no tools bound)."""
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        for message in payload.get("messages", ()):
            if message.get("content") is None:
                message["content"] = ""
        payload["extra_body"] = {"max_tokens": self.answer_tokens, **(payload.get("extra_body") or {})}
        return payload

    @property
    def _format_key(self) -> tuple[str, str]:
        return self._base.rstrip("/"), self.model_name

    def _format_index(self) -> int:
        """Where in FORMATS this server's JSON-mode requests start: what it took before, else json_object on
        llama-cpp-python (known by its tokenizer route, probed by `_fitted` before the first request)."""
        if self._format_key not in ACCEPTED and self.tokenizer.route == "/extras/tokenize":
            ACCEPTED[self._format_key] = FORMATS.index("json_object")
        return ACCEPTED.get(self._format_key, 0)

    async def _fitted(self, messages: list[BaseMessage], tools: Any) -> list[BaseMessage]:
        fitted, scale = await fit_to_context(
            self.tokenizer, messages, tools, self.num_ctx - self.answer_tokens
        )
        if scale is not None:
            self._token_scale = max(1.0, scale)
        return fitted

    async def _chosen_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """In JSON tool mode a call without tools (the reason node's last one past
        `context.max_tool_rounds`) still goes with the tool list of the calls before it: the same JSON
        instructions at the same place, so the prompt keeps its prefix; its `response_format` allows no
        tool call, so the model answers in `content` (the reason node drops any call all the same)."""
        calls = True
        if self.tool_mode == "json":
            if kwargs.get("tools"):
                self._json_tools = kwargs["tools"]
            elif self._json_tools is not None:
                kwargs, calls = {**kwargs, "tools": self._json_tools}, False
        messages = await self._fitted(messages, kwargs.get("tools"))
        if kwargs.get("tools") and self.tool_mode == "json":
            stream = self._json_stream(messages, stop, run_manager, calls, **kwargs)
        else:
            stream = self._native_stream(messages, stop, run_manager, **kwargs)
        async with aclosing(stream):
            async for chunk in stream:
                yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Every call goes through the stream (one path for usage, repairs and failures)."""
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    async def _raw_stream(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """ChatOpenAI's own stream, its errors categorised."""
        answered = False
        try:
            stream = aiter_closing(
                ChatOpenAI._astream(self, messages, stop, None, stream_usage=True, **kwargs)
            )
            async with aclosing(stream):
                async for chunk in stream:
                    answered = True
                    yield chunk
        except Exception as exc:
            raise self._translate(exc, answered) from exc

    async def _native_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The reply as it streams, with tool names said once (llama-cpp-python repeats the name in every
        chunk of a call), usage counted when the server sends none, and a reply that streamed nothing
        asked again without streaming (llama-cpp-python streams an empty body when it cannot stream with
        automatic tool choice; the non-streamed request then gives the answer or the real error)."""
        reply = _Reply()
        for streamed in (True, False):
            source = self._raw_stream if streamed else self._once
            held: list[ChatGenerationChunk] = []  # chunks before the first text or call (dropped if none)
            stream = source(messages, stop, **kwargs)
            try:
                async with aclosing(stream):
                    async for chunk in stream:
                        reply.see(chunk)
                        if not reply.got:
                            held.append(chunk)
                            continue
                        for out in [*held, chunk]:
                            if out.message.text and run_manager:
                                await run_manager.on_llm_new_token(out.message.text, chunk=out)
                            yield out
                        held = []
            except Dropped:
                if not streamed:
                    raise
            if reply.got:
                break
            reply = _Reply()
            log.info("the model server streamed an empty reply: asking again without streaming")
        self._check(reply)
        if reply.usage is None:
            yield await self._counted_usage(messages, reply.text + reply.call_text)

    def _check(self, reply: _Reply) -> None:
        """A reply that is not an answer: empty, cut at the length limit, or only a malformed tool call."""
        if not reply.got:
            raise ModelUnavailable(
                f"the model server at {self._base} sent an empty reply (no text, no tool call); its log "
                "says why. Ask again, or use a slash command (/help)",
                FailureCategory.BAD_REPLY,
            )
        if reply.finish == "length":
            raise ModelUnavailable(too_long_message(self.answer_tokens), FailureCategory.TRUNCATED)
        merged = reply.merged
        if (
            merged is not None
            and merged.invalid_tool_calls
            and not merged.tool_calls
            and not reply.text.strip()
        ):
            problem = f"its tool call was not valid JSON: {merged.invalid_tool_calls[0].get('args')!r:.80}"
            raise ModelUnavailable(bad_reply_message(problem, False), FailureCategory.BAD_REPLY)

    async def _once(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """One non-streamed request, as a single chunk. Sent twice at most: after a dropped stream the
        client's pooled connection may be the dead one (a read error before any byte)."""
        for attempt in (1, 2):
            try:
                result = await ChatOpenAI._agenerate(self, messages, stop, None, **kwargs)
                break
            except Exception as exc:
                failure = self._translate(exc)
                if attempt == 2 or not isinstance(failure, Dropped):
                    raise failure from exc
        generation = result.generations[0]
        message = generation.message
        chunk = AIMessageChunk(
            content=message.content,
            tool_call_chunks=[
                ToolCallChunk(name=c["name"], args=_args_text(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(getattr(message, "tool_calls", []))
            ],
            usage_metadata=getattr(message, "usage_metadata", None),
            response_metadata=message.response_metadata,
        )
        yield ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)

    async def _counted_usage(self, messages: list[BaseMessage], answer: str) -> ChatGenerationChunk:
        """Usage from the server's tokenizer (or the estimate) when the stream had none."""
        inputs = await self.tokenizer.count_messages(messages)
        outputs = await self.tokenizer.count(answer)
        usage = UsageMetadata(input_tokens=inputs, output_tokens=outputs, total_tokens=inputs + outputs)
        info = {"usage_source": self.tokenizer.source}
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage, response_metadata=info)
        )

    async def _json_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        calls: bool = True,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The JSON-mode reply (graph.model.json_stream), constrained by `response_format` where the server
        takes one (FORMATS), else by the instructions alone; `calls` False: no tool call allowed."""
        tools = kwargs.pop("tools")
        kwargs.pop("tool_choice", None)
        schema = tool_call_schema([t["function"]["name"] for t in tools], calls)

        async def pieces(prompt: list[BaseMessage]) -> AsyncGenerator[Piece, None]:
            while True:
                at = self._format_index()
                extra = dict(self.extra_body or {})
                chosen = response_format(FORMATS[at], schema)
                if chosen is not None:
                    extra["response_format"] = chosen
                try:
                    async for chunk in self._native_stream(prompt, stop, None, extra_body=extra, **kwargs):
                        ACCEPTED[self._format_key] = at
                        if isinstance(chunk.message, AIMessageChunk) and chunk.message.usage_metadata:
                            yield "final", chunk
                        yield "text", chunk.message.text
                    return
                except ModelUnavailable as exc:
                    if not _format_refused(exc) or at + 1 >= len(FORMATS):
                        raise
                    log.info("the server refused response_format %s: trying the next", FORMATS[at])
                    ACCEPTED[self._format_key] = at + 1

        async for chunk in json_tool_stream(pieces, _final_chunk, messages, tools, run_manager):
            yield chunk


class Dropped(ModelUnavailable):
    """The server closed the connection before any answer (not a refused connection)."""


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused (no server), by the transport's own exception in the chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in ("ConnectError", "ConnectionRefusedError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Reply:
    """What a streamed reply held so far: text or a call yet, the finish reason, usage, the merged message."""

    def __init__(self) -> None:
        self.got = False
        self.finish: str | None = None
        self.usage: UsageMetadata | None = None
        self.merged: AIMessageChunk | None = None
        self.names: dict[int, str] = {}

    @property
    def text(self) -> str:
        return self.merged.text if self.merged is not None else ""

    @property
    def call_text(self) -> str:
        chunks = self.merged.tool_call_chunks if self.merged is not None else []
        return "".join((c.get("name") or "") + (c.get("args") or "") for c in chunks)

    def see(self, chunk: ChatGenerationChunk) -> None:
        message = chunk.message
        if isinstance(message, AIMessageChunk):
            message.tool_call_chunks = _said_once(message.tool_call_chunks, self.names)
            self.usage = message.usage_metadata or self.usage
            self.got = self.got or bool(message.content or message.tool_call_chunks)
            self.merged = message if self.merged is None else self.merged + message
        self.finish = (chunk.generation_info or {}).get("finish_reason") or self.finish


def _format_refused(exc: ModelUnavailable) -> bool:
    low = str(exc).lower()
    return "response_format" in low or "json_schema" in low or "(http 422" in low


def _final_chunk(final: Any) -> ChatGenerationChunk:
    if isinstance(final, ChatGenerationChunk) and isinstance(final.message, AIMessageChunk):
        return ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=final.message.usage_metadata),
            generation_info=final.generation_info,
        )
    return ChatGenerationChunk(message=AIMessageChunk(content=""))


def _args_text(args: Mapping[str, Any]) -> str:
    import json

    return json.dumps(args, ensure_ascii=False)


def _said_once(chunks: list[ToolCallChunk], names: dict[int, str]) -> list[ToolCallChunk]:
    """Tool-call chunks with each call's name kept only on its first chunk (LangChain concatenates names)."""
    out = []
    for chunk in chunks:
        index = chunk.get("index") or 0
        name = chunk.get("name")
        if name and index in names:
            chunk = ToolCallChunk(name=None, args=chunk.get("args"), id=None, index=index)
        elif name:
            names[index] = name
        out.append(chunk)
    return out


def openai_model_kwargs(
    settings: Settings, tool_mode: Literal["auto", "native", "json"] | None = None
) -> dict[str, Any]:
    """CopilotChatOpenAI's arguments from the settings; tool_mode auto means native (an OpenAI-compatible
    server does not say whether the model calls tools: set json for a model whose template has none)."""
    llm, inference = settings.llm, settings.inference
    mode = tool_mode or llm.tool_mode
    return {
        "model": llm.model,
        "base_url": llm.base_url,
        "api_key": llm.api_key.get_secret_value() or "none",
        "temperature": inference.temperature,
        "top_p": inference.top_p,
        "max_tokens": inference.max_tokens,
        "answer_tokens": inference.max_tokens,
        "num_ctx": llm.num_ctx,
        "stop": inference.stop_sequences or None,
        "timeout": llm.request_timeout,
        "stream_chunk_timeout": llm.request_timeout,
        "max_retries": 0,
        "tool_mode": "json" if mode == "json" else "native",
    }


def build_openai_model(
    settings: Settings, tool_mode: Literal["auto", "native", "json"] | None = None
) -> CopilotChatOpenAI:
    return CopilotChatOpenAI(**openai_model_kwargs(settings, tool_mode))
