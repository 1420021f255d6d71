"""Ollama's own API, beside the chat: does the model exist and call tools (/api/show), is it servable for
the health check, and loading it at start (an empty /api/chat)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

import httpx

from graph.model.errors import (
    FailureCategory,
    ModelUnavailable,
    down_message,
    missing_message,
    overloaded_message,
    recent_chat_failure,
    slow_message,
)

if TYPE_CHECKING:
    from config import Settings

ToolMode = Literal["native", "json"]
LlmStatus = Literal["ok", "down", "model_missing", "failing"]


class ShowReply(TypedDict, total=False):
    """What the copilot reads of Ollama's /api/show reply (the rest is ignored)."""

    capabilities: list[str]  # "completion", "tools", ...; absent before Ollama 0.6
    template: str


async def _show(settings: Settings) -> ShowReply:
    url = settings.llm.base_url.rstrip("/") + "/api/show"
    timeout = min(settings.llm.request_timeout, 10.0)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, json={"model": settings.llm.model})
    except httpx.TimeoutException:
        raise ModelUnavailable(slow_message(settings.llm.base_url, timeout), FailureCategory.SLOW) from None
    except httpx.HTTPError:
        raise ModelUnavailable(down_message(settings.llm.base_url), FailureCategory.DOWN) from None
    if response.status_code == 404:
        raise ModelUnavailable(
            missing_message(settings.llm.model, settings.llm.base_url), FailureCategory.MODEL_MISSING
        )
    if response.status_code in (429, 503):
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        raise ModelUnavailable(overloaded_message(settings.llm.base_url, detail), FailureCategory.OVERLOADED)
    if response.status_code >= 400:
        raise ModelUnavailable(f"the model server answered {response.status_code}: {response.text[:200]}")
    reply: ShowReply = response.json()
    return reply


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
    body = {
        "model": llm.model,
        "messages": [],
        "stream": False,
        "keep_alive": llm.keep_alive,
        "options": {"num_ctx": llm.num_ctx},
    }
    try:
        async with httpx.AsyncClient(base_url=llm.base_url, timeout=llm.request_timeout) as client:
            response = await client.post("/api/chat", json=body)
    except httpx.HTTPError:
        return "not loaded: " + down_message(llm.base_url)
    if response.status_code == 404:
        return "not loaded: " + missing_message(llm.model, llm.base_url)
    if response.is_error:
        return f"not loaded: the model server answered {response.status_code}: {response.text[:200]}"
    return f"loaded {llm.model} (keep_alive {llm.keep_alive})"
