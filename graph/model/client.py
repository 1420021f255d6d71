"""ChatOllama from settings, tool-mode detection, JSON-mode tool calls for tool-less models, clear errors.

Every model failure is a ModelUnavailable with a category (FailureCategory) and a message saying what
happened and what to do; chat outcomes are kept in a small in-process window so the health check reflects
whether chatting actually works, not only whether /api/show answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal

import httpx
import ollama
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import agenerate_from_stream
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import ToolDescription
from langchain_ollama import ChatOllama
from pydantic import PrivateAttr

from graph.model.errors import (
    FailureCategory,
    ModelUnavailable,
    cut_message,
    down_message,
    missing_message,
    overloaded_message,
    slow_message,
    too_long_message,
)
from graph.model.json_mode import tool_call_schema
from graph.model.json_stream import Piece, RecordedCalls, aiter_closing, json_tool_stream
from graph.model.ollama_server import ToolMode, detect_tool_mode

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun

    from config import Settings

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- JSON tool mode


class CopilotChatOllama(RecordedCalls, ChatOllama):
    """ChatOllama that raises categorised ModelUnavailable errors (a cut or length-limited stream is one),
    records each call's outcome for the health check (RecordedCalls) and, in JSON tool mode, gets tool
    calls through `format` while streaming the answer text as it is generated."""

    tool_mode: Literal["auto", "native", "json"] = "native"
    _resolved: ToolMode | None = PrivateAttr(default=None)
    _json_tools: Any = PrivateAttr(default=None)  # the tools of the last JSON-mode call that had some

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

    @property
    def _served_model(self) -> str:
        return self.model

    def _convert_messages_to_ollama_messages(self, messages: list[BaseMessage]) -> Sequence[Any]:
        """LangChain's conversion, plus `tool_name` on tool results (Ollama's field for which tool answered;
        templates such as Qwen's and Llama 3.x's can show it)."""
        converted = list(super()._convert_messages_to_ollama_messages(messages))
        for source, target in zip(messages, converted, strict=True):
            if isinstance(source, ToolMessage) and source.name and isinstance(target, dict):
                target["tool_name"] = source.name
        return converted

    def _translate(self, exc: Exception, answered: bool = False) -> ModelUnavailable:
        """A client-side exception as a categorised ModelUnavailable; `answered`: part of the reply came."""
        base = self._base
        if isinstance(exc, ModelUnavailable):
            return exc
        if isinstance(exc, httpx.TimeoutException):
            timeout = (self.client_kwargs or {}).get("timeout")
            return ModelUnavailable(
                slow_message(base, float(timeout) if isinstance(timeout, int | float) else None),
                FailureCategory.SLOW,
            )
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return ModelUnavailable(down_message(base), FailureCategory.DOWN)
        if isinstance(exc, ollama.ResponseError):
            return self._response_error(exc)
        if isinstance(exc, httpx.TransportError):  # RemoteProtocolError, ReadError: the connection dropped
            if answered:
                return ModelUnavailable(
                    cut_message("the model server dropped the connection"), FailureCategory.TRUNCATED
                )
            return ModelUnavailable(
                f"the model server at {base} closed the connection before answering: try again in a moment",
                FailureCategory.DOWN,
            )
        if isinstance(exc, json.JSONDecodeError):  # the ollama client reads NDJSON line by line
            return ModelUnavailable(cut_message("the reply stopped inside a line"), FailureCategory.TRUNCATED)
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
            return ModelUnavailable(missing_message(self.model, base), FailureCategory.MODEL_MISSING)
        if status in (429, 503) or "server busy" in low or "maximum pending" in low:
            detail = f"HTTP {status}: {error}" if status > 0 else error
            return ModelUnavailable(overloaded_message(base, detail), FailureCategory.OVERLOADED)
        if "timed out" in low:
            return ModelUnavailable(
                f"the model server at {base} timed out ({error}); it may still be loading the model: "
                "try again in a moment",
                FailureCategory.SLOW,
            )
        if status < 0:  # an {"error": ...} line inside a 200 stream: generation stopped midway
            return ModelUnavailable(
                cut_message(f"the model server reported: {error}"), FailureCategory.TRUNCATED
            )
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
            raise ModelUnavailable(cut_message(how), FailureCategory.TRUNCATED)
        if final.get("done_reason") == "length":
            raise ModelUnavailable(too_long_message(self.num_predict), FailureCategory.TRUNCATED)

    async def _json_mode(self, kwargs: Mapping[str, object]) -> bool:
        """Whether this call goes in JSON tool mode: the model takes tools as JSON, and the call has tools
        bound or comes after one that had (see `_chosen_stream`)."""
        tools = bool(kwargs.get("tools")) or self._json_tools is not None
        return tools and await self.resolved_mode() == "json"

    async def _chosen_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """In JSON tool mode a call without tools (the reason node's last one past
        `context.max_tool_rounds`) still goes with the tool list of the calls before it: the same JSON
        instructions at the same place, so the prompt keeps its KV-cache prefix; its `format` allows no tool
        call (`tool_calls` always empty), so the model answers in `content`. As the openai provider does."""
        if await self._json_mode(kwargs):
            calls = bool(kwargs.get("tools"))
            if calls:
                self._json_tools = kwargs["tools"]
            else:
                kwargs = {**kwargs, "tools": self._json_tools}
            stream = self._json_stream(messages, stop, run_manager, calls, **kwargs)
        else:
            stream = aiter_closing(ChatOllama._astream(self, messages, stop, run_manager, **kwargs))
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
        calls: bool = True,
        **kwargs: Any,
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The JSON-mode reply through graph.model.json_stream, its tool calls forced by Ollama's `format`
        (`calls` False: no tool call allowed)."""
        tools: list[ToolDescription] = kwargs.pop("tools")
        schema = tool_call_schema([t["function"]["name"] for t in tools], calls)

        async def pieces(prompt: list[BaseMessage]) -> AsyncGenerator[Piece, None]:
            stream = aiter_closing(self._acreate_chat_stream(prompt, stop, format=schema, **kwargs))
            async with aclosing(stream):
                async for part in stream:
                    if isinstance(part, str):
                        continue
                    message = part.get("message")
                    yield "text", (message.get("content") if message is not None else None) or ""
                    if part.get("done"):
                        yield "final", part

        async for chunk in json_tool_stream(pieces, _final_chunk, messages, tools, run_manager):
            yield chunk


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


def _settings_like(model: CopilotChatOllama) -> Any:
    """The few settings detect_tool_mode reads, rebuilt from the model's own fields."""
    from types import SimpleNamespace

    timeout = float((model.client_kwargs or {}).get("timeout", 10.0))
    llm = SimpleNamespace(
        tool_mode="auto",
        base_url=model.base_url or "http://localhost:11434",
        model=model.model,
        request_timeout=timeout,
    )
    return SimpleNamespace(llm=llm)


def build_chat_model(
    settings: Settings, tool_mode: Literal["auto", "native", "json"] | None = None
) -> BaseChatModel:
    """The configured provider's chat model (ChatOllama, or ChatOpenAI for llm.provider openai: see
    graph.model.openai_model); tool_mode defaults to settings.llm.tool_mode (auto asks)."""
    if settings.llm.provider == "openai":
        from graph.model.openai_model import build_openai_model

        return build_openai_model(settings, tool_mode)
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
