"""ChatOllama from settings, tool-mode detection, JSON-mode tool calls for tool-less models, clear errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx
import ollama
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_ollama import ChatOllama
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun

    from config import Settings

ToolMode = Literal["native", "json"]


class ModelUnavailable(Exception):
    """The model server is down, too slow, or lacks the model/capability; the message says what to do."""


async def _show(settings: Settings) -> dict[str, Any]:
    url = settings.llm.base_url.rstrip("/") + "/api/show"
    try:
        async with httpx.AsyncClient(timeout=min(settings.llm.request_timeout, 10.0)) as client:
            response = await client.post(url, json={"model": settings.llm.model})
    except httpx.TimeoutException:
        raise ModelUnavailable(
            f"the model server at {settings.llm.base_url} did not answer in time"
        ) from None
    except httpx.HTTPError:
        raise ModelUnavailable(_down(settings.llm.base_url)) from None
    if response.status_code == 404:
        raise ModelUnavailable(_missing(settings.llm.model, settings.llm.base_url))
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


async def model_status(settings: Settings) -> Literal["ok", "down", "model_missing"]:
    """For the health endpoint: is the configured model servable right now?"""
    try:
        await _show(settings)
    except ModelUnavailable as exc:
        return "model_missing" if "not installed" in str(exc) else "down"
    return "ok"


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


def _down(base_url: str) -> str:
    return (
        f"the model server at {base_url} is not reachable (is Ollama running? `ollama serve`). "
        "Slash commands such as /signal or /portfolio still work (/help)."
    )


def _missing(model: str, base_url: str) -> str:
    return f"model '{model}' is not installed on {base_url}: run `ollama pull {model}`"


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


def parse_json_reply(text: str, names: set[str]) -> AIMessage:
    """The JSON-mode answer as an AIMessage with .tool_calls, exactly like a native tool-calling reply."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return AIMessage(text)  # the model ignored the format: treat it as a plain answer
    if not isinstance(data, dict):
        return AIMessage(text)
    calls = [
        {"name": c["name"], "args": c.get("arguments") or {}, "id": f"call_{uuid.uuid4().hex[:12]}",
         "type": "tool_call"}
        for c in data.get("tool_calls") or []
        if isinstance(c, dict) and c.get("name") in names and isinstance(c.get("arguments", {}), dict)
    ]  # fmt: skip
    return AIMessage(str(data.get("content") or ""), tool_calls=calls)


class CopilotChatOllama(ChatOllama):
    """ChatOllama that raises ModelUnavailable and, in JSON tool mode, gets tool calls through `format`."""

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

    def _translate(self, exc: Exception) -> ModelUnavailable:
        base = self.base_url or "http://localhost:11434"
        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return ModelUnavailable(_down(base))
        if isinstance(exc, httpx.TimeoutException):
            return ModelUnavailable(
                f"the model server at {base} did not answer within the timeout; try again"
            )
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 or "not found" in exc.error:
                return ModelUnavailable(_missing(self.model, base))
            if "does not support tools" in exc.error:
                return ModelUnavailable(
                    f"model '{self.model}' does not support native tool calling; "
                    "set llm.tool_mode to json or auto"
                )
            return ModelUnavailable(f"the model server returned an error: {exc.error}")
        return ModelUnavailable(f"the model server failed: {exc}")

    async def _acreate_chat_stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> AsyncIterator[Mapping[str, Any] | str]:
        try:
            async for part in super()._acreate_chat_stream(messages, stop, **kwargs):
                yield part
        except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
            raise self._translate(exc) from exc

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        tools = kwargs.get("tools")
        if not tools or await self.resolved_mode() == "native":
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                yield chunk
            return
        message = await self._json_call(messages, stop, kwargs)
        if run_manager and message.text:
            await run_manager.on_llm_new_token(message.text)
        chunks = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i,
                   "type": "tool_call_chunk"} for i, c in enumerate(message.tool_calls)]  # fmt: skip
        yield ChatGenerationChunk(message=AIMessageChunk(content=message.text, tool_call_chunks=chunks))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if not kwargs.get("tools") or await self.resolved_mode() == "native":
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        message = await self._json_call(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _json_call(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        tools: list[dict[str, Any]] = kwargs.pop("tools")
        names = [t["function"]["name"] for t in tools]
        rewritten = _to_json_mode(messages, tools)
        parts = [
            p
            async for p in self._acreate_chat_stream(
                rewritten, stop, format=tool_call_schema(names), **kwargs
            )
        ]
        text = "".join(
            p["message"].get("content") or "" for p in parts if not isinstance(p, str) and "message" in p
        )
        return parse_json_reply(text, set(names))


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
