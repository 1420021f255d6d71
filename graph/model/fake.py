"""A scripted chat model for tests, benches and notebooks: replies from a script, supports bind_tools.

LangChain's fake chat models do not implement `bind_tools` and lose `tool_calls` when streamed, so the
graph could not be driven with them; this one streams content tokens and keeps the tool calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall, ToolCallChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field, JsonValue

Reply = AIMessage | str | Exception | Callable[[list[BaseMessage]], "AIMessage | str"]


def tool_call(name: str, args: Mapping[str, JsonValue], call_id: str | None = None) -> AIMessage:
    """An AIMessage asking for one tool call, as a model with native tool calling would answer."""
    return AIMessage(
        content="", tool_calls=[ToolCall(name=name, args=dict(args), id=call_id or f"call_{name}")]
    )


class ScriptedChatModel(BaseChatModel):
    """Answers with `replies` in order (the last one repeats); records every prompt and bound tool list.

    A reply may be an AIMessage, a string, an exception to raise, or a function of the prompt. Streamed, a
    reply comes word by word, `delay` seconds before each (a stand-in for the speed of generation).
    """

    replies: list[Any]
    delay: float = 0.0
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound: list[list[str]] = Field(default_factory=list)
    index: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        self.bound.append([t.name if isinstance(t, BaseTool) else str(t) for t in tools])
        return self

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        self.calls.append(list(messages))
        reply = self.replies[min(self.index, len(self.replies) - 1)]
        self.index += 1
        if isinstance(reply, Exception):
            raise reply
        if callable(reply) and not isinstance(reply, AIMessage):
            reply = reply(messages)
        return AIMessage(content=reply) if isinstance(reply, str) else reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        text = message.content if isinstance(message.content, str) else ""
        for i, word in enumerate(text.split(" ")):
            if self.delay:
                time.sleep(self.delay)
            token = word if i == 0 else " " + word
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        if message.tool_calls:
            chunks = [
                ToolCallChunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks))
