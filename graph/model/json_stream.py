"""What every provider's chat model shares: the JSON tool mode's streaming loop (the reply parsed as it
streams: answer text as it is generated, tool calls once their array is complete; one retry on an unusable
reply), and `RecordedCalls`, the stream wrapper that records each call's outcome for the health check."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolCallChunk,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.utils.function_calling import ToolDescription

from graph.model.errors import FailureCategory, ModelUnavailable, bad_reply_message, chat_outcomes
from graph.model.json_mode import JSON_REPLY, RETRY_PROMPT, JsonReplyParser, check_tool_calls, to_json_mode

if TYPE_CHECKING:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun

log = logging.getLogger(__name__)

JSON_RETRIES = 1  # a JSON-mode reply with an unknown tool or malformed arguments goes back to the model once

# What a provider's raw reply gives the loop: ("text", a piece of the reply) or ("final", whatever the
# provider needs to build its closing chunk: Ollama's `done` part, an OpenAI usage chunk).
Piece = tuple[str, Any]
OpenReply = Callable[[list[BaseMessage]], AsyncIterator[Piece]]
FinalChunk = Callable[[Any], ChatGenerationChunk]


async def json_tool_stream(
    open_reply: OpenReply,
    final_chunk: FinalChunk,
    messages: list[BaseMessage],
    tools: list[ToolDescription],
    run_manager: AsyncCallbackManagerForLLMRun | None,
) -> AsyncGenerator[ChatGenerationChunk, None]:
    """The JSON-mode reply parsed as it streams: the `content` text as it is generated, the tool calls
    when their array is complete. Unknown tools or non-object arguments (or invalid JSON, when nothing
    was shown yet) go back to the model once (JSON_RETRIES) before becoming a BAD_REPLY. `open_reply`
    sends a prompt and yields its pieces; `final_chunk` makes the last chunk of the provider's final piece."""
    names = [t["function"]["name"] for t in tools]
    prompt = to_json_mode(messages, tools)
    for attempt in range(JSON_RETRIES + 1):
        parser, problem, shown = JsonReplyParser(), None, False
        held: list[str] = []
        calls_checked, called, final = False, False, None
        stream = aiter_closing(open_reply(prompt))
        async with aclosing(stream):
            async for kind, piece in stream:
                if kind == "final":
                    final = piece
                    continue
                for found, value in parser.feed(piece or ""):
                    if found == "tool_calls":
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
            raw = AIMessageChunk(content="", additional_kwargs={JSON_REPLY: parser.text})
            yield ChatGenerationChunk(message=raw)
            yield final_chunk(final)
            return
        if shown or attempt == JSON_RETRIES:
            raise ModelUnavailable(bad_reply_message(problem, attempt > 0), FailureCategory.BAD_REPLY)
        log.info("JSON-mode reply rejected (%s): asking the model again", problem)
        retry = RETRY_PROMPT.format(problem=problem, names=", ".join(names))
        prompt = [*prompt, AIMessage(parser.text), HumanMessage(retry)]


def _calls_chunk(calls: list[ToolCall]) -> ChatGenerationChunk:
    chunks = [
        ToolCallChunk(
            name=c["name"],
            args=json.dumps(c["args"], ensure_ascii=False),
            id=c["id"],
            index=i,
            type="tool_call_chunk",
        )
        for i, c in enumerate(calls)
    ]
    return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks))


def aiter_closing(stream: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """The stream as an async generator, so `aclosing` can close it (and the HTTP response with it)."""
    if isinstance(stream, AsyncGenerator):
        return stream

    async def relay() -> AsyncGenerator[Any, None]:
        async for item in stream:
            yield item

    return relay()


class RecordedCalls:
    """Mixin for the providers' chat models (before the LangChain class in the bases): `_astream` runs the
    provider's `_chosen_stream` and records the call's outcome (graph.model.errors.chat_outcomes), a
    categorised failure also logged. The provider says where it sends (`_base`) and which model
    (`_served_model`)."""

    @property
    def _base(self) -> str:
        raise NotImplementedError

    @property
    def _served_model(self) -> str:
        raise NotImplementedError

    def _chosen_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The provider's reply as chunks (JSON tool mode or native), failures raised as ModelUnavailable."""
        raise NotImplementedError

    def _record(self, failure: ModelUnavailable | None) -> None:
        chat_outcomes(self._base, self._served_model).record(failure)
        if failure is not None:
            log.warning("model call failed [%s]: %s", failure.category.value, failure)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        try:
            stream = aiter_closing(self._chosen_stream(messages, stop, run_manager, **kwargs))
            async with aclosing(stream):
                async for chunk in stream:
                    yield chunk
        except ModelUnavailable as exc:
            self._record(exc)
            raise
        self._record(None)
