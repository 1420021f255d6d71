"""An OpenAI-compatible server's API beside the chat: is the model served (GET /v1/models, for the health
check), and its tokenizer (llama-cpp-python: POST /extras/tokenize; llama.cpp's llama-server and vLLM:
POST /tokenize) to count prompts, with the copilot's estimate where the server has none."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import httpx
from langchain_core.messages import BaseMessage, SystemMessage

from graph.model.errors import recent_chat_failure
from prompts.system import approx_text_tokens, approx_tokens, trim_history

if TYPE_CHECKING:
    from config import Settings
    from graph.model.ollama_server import LlmStatus

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 4  # tokens a chat template adds around each message (role markers), as approx_tokens
# The tokenizer routes tried in order, with a body each understands (extra keys are ignored).
TOKENIZE_ROUTES = ("/extras/tokenize", "/tokenize")


def openai_down_message(base_url: str) -> str:
    return (
        f"the model server at {base_url} is not reachable (is the OpenAI-compatible server running? "
        "e.g. `vllm serve`, `llama-server`, `python -m llama_cpp.server`). "
        "Slash commands such as /signal or /portfolio still work (/help)."
    )


def openai_missing_message(model: str, base_url: str) -> str:
    return (
        f"model '{model}' is not served by {base_url}: set llm.model to a name GET {base_url}/models lists, "
        "or start the server with that model (llama-cpp-python: --model_alias)"
    )


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base.removesuffix("/v1")


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def prompt_text(messages: Sequence[BaseMessage], tools: Any = None) -> str:
    """The prompt as plain text (roles, contents, tool calls, tool schemas) for the tokenizer."""
    parts = []
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content, ensure_ascii=False)
        calls = getattr(m, "tool_calls", None) or []
        parts.append(f"{m.type}\n{content}" + "".join(c["name"] + json.dumps(c["args"]) for c in calls))
    if tools:
        parts.append(json.dumps(tools, ensure_ascii=False))
    return "\n".join(parts)


class Tokenizer:
    """Counts tokens with the server's tokenizer when it has a tokenize route, else estimates them."""

    def __init__(self, base_url: str, model: str, api_key: str, timeout: float) -> None:
        self.root, self.model, self.timeout = _root(base_url), model, timeout
        self.headers = _headers(api_key)
        self.route: str | Literal[False] | None = None  # None: not probed yet; False: the server has none

    @property
    def source(self) -> str:
        return "server" if self.route else "estimate"

    async def count(self, text: str) -> int:
        if self.route is False:
            return approx_text_tokens(text)
        routes = [self.route] if self.route else list(TOKENIZE_ROUTES)
        body = {"model": self.model, "input": text, "content": text, "prompt": text}
        try:
            async with httpx.AsyncClient(base_url=self.root, timeout=self.timeout, headers=self.headers) as c:
                for route in routes:
                    reply = await c.post(route, json=body)
                    if reply.status_code == 200 and isinstance(tokens := reply.json().get("tokens"), list):
                        self.route = route
                        return len(tokens)
        except (httpx.HTTPError, ValueError) as exc:  # the chat call will say what is wrong with the server
            log.debug("tokenize failed (%s): estimating", exc)
            return approx_text_tokens(text)
        log.info("the model server at %s has no tokenize route: prompts are estimated", self.root)
        self.route = False
        return approx_text_tokens(text)

    async def count_messages(self, messages: Sequence[BaseMessage], tools: Any = None) -> int:
        return await self.count(prompt_text(messages, tools)) + MESSAGE_OVERHEAD * len(messages)


async def fit_to_context(
    tokenizer: Tokenizer, messages: list[BaseMessage], tools: Any, limit: int
) -> tuple[list[BaseMessage], float | None]:
    """The prompt cut (oldest history first, never the system messages nor the newest turn) until the server's
    tokenizer counts at most `limit` tokens, and the measured real/estimated ratio (None when estimated).
    The graph's window already aims at the budget by the estimate; this is the last check by real tokens."""
    real = await tokenizer.count_messages(messages, tools)
    estimate = sum(approx_tokens(m) for m in messages) + approx_text_tokens(json.dumps(tools or []))
    scale = real / estimate if tokenizer.source == "server" and estimate else None
    head = 0
    while head < len(messages) and isinstance(messages[head], SystemMessage):
        head += 1
    fitted = messages
    for _ in range(6):
        if real <= limit:
            break
        rest = fitted[head:]
        budget = int(sum(approx_tokens(m) for m in rest) * limit / real * 0.9)
        cut = trim_history(rest, budget)
        if len(cut) == len(rest):
            break  # only the newest turn is left: the server will say it does not fit
        fitted = [*messages[:head], *cut]
        real = await tokenizer.count_messages(fitted, tools)
        log.warning("prompt over the context window by the server's tokenizer: cut to %d tokens", real)
    return fitted, scale


async def openai_model_status(settings: Settings) -> LlmStatus:
    """For the health endpoint: does GET /v1/models answer and list the configured model? "failing" when it
    does but the recent chat calls failed."""
    llm = settings.llm
    url = llm.base_url.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=min(llm.request_timeout, 10.0)) as client:
            reply = await client.get(url, headers=_headers(llm.api_key.get_secret_value()))
        reply.raise_for_status()
        served = [str(m.get("id")) for m in reply.json().get("data") or [] if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError, AttributeError):
        return "down"
    if llm.model not in served:
        return "model_missing"
    return "failing" if recent_chat_failure(settings) is not None else "ok"
