"""reason: answer slash commands without a model, otherwise ask the chat model (tools bound while allowed)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.runnables import Runnable
from langgraph.runtime import Runtime

from graph import live_contexts
from graph.answers import NOTHING_WAITING
from graph.deps import Deps, Node, run_thread_id
from graph.messages import render_message, text, tool_results_since_turn
from graph.model.errors import FailureCategory, ModelUnavailable
from graph.nodes.load_context import context_snapshots, stored_message_cap
from graph.risk.proposals import trader_limits
from graph.slash import (
    DecisionCommand,
    HelpCommand,
    PrefsCommand,
    SlashCommand,
    SlashError,
    ToolCommand,
    command_of,
)
from graph.state import State
from prompts.system import SYSTEM_PROMPT, approx_tokens, live_context
from prompts.window import MODEL_VIEW, as_sent, model_window
from tools.context import Context, required

log = logging.getLogger(__name__)

SLASH_STILL_WORK = (
    "Slash commands still work: /signal XAUUSD 15m, /analyze XAUUSD, /portfolio, "
    "/buy XAUUSD sl <price> tp <price>, /approve, /reject, /help."
)
MODEL_DOWN = "The language model is not available right now ({error}). " + SLASH_STILL_WORK
# An answer that came but cannot be used (cut off, malformed) is not the model being "not available".
MODEL_UNUSABLE = "The language model's answer could not be used ({error}). " + SLASH_STILL_WORK
UNUSABLE = (FailureCategory.TRUNCATED, FailureCategory.BAD_REPLY)
PREFS_ELSEWHERE = (
    "/prefs works in the web page, `copilot chat` and Telegram (the copilot answers it, not the graph)."
)
NO_ANSWER = "(no answer: {})"  # what the model sees of a turn it gave no usable answer to
TOOL_LIMIT = "I reached the limit of tool calls for one message; ask again to continue."


def slash_reply(command: SlashCommand | None) -> State | None:
    """A slash command as this turn's AI message (a tool call or a text), or None when it is plain chat."""
    if command is None:
        return None
    if isinstance(command, ToolCommand):
        call = ToolCall(name=command.tool, args=dict(command.args), id=f"slash_{uuid.uuid4().hex[:12]}")
        return State(messages=[AIMessage(content="", tool_calls=[call])], slash=True)
    if isinstance(command, HelpCommand):
        return State(messages=[AIMessage(content=command.text)], slash=True)
    if isinstance(command, SlashError):
        return State(messages=[AIMessage(content=command.message)], slash=True)
    if isinstance(command, DecisionCommand):
        return State(messages=[AIMessage(content=NOTHING_WAITING)], slash=True)
    if isinstance(command, PrefsCommand):  # the copilot facade answers /prefs before any run (graph.copilot)
        return State(messages=[AIMessage(content=PREFS_ELSEWHERE)], slash=True)
    return None


def rendered_results(messages: list[AnyMessage]) -> str:
    """This turn's tool results as text: how slash turns and model-less fallbacks answer."""
    results = tool_results_since_turn(messages)
    parts = [render_message(m) for m in results]
    return "\n\n".join(parts) or "Done."


def prompt(
    deps: Deps, state: State, with_tools: bool, ctx: Context
) -> tuple[list[BaseMessage], HumanMessage | None]:
    """Static system prompt, then the history window with the live context inside the trader's turn.

    Nothing follows the last user/tool message, so every Ollama template renders the tool list and the answer
    header; the window grows append-only between block cuts, so consecutive prompts share their prefix
    (prompts/window.py). The history gets what is left of num_ctx after the answer (num_predict), the system
    prompt and the tool schemas, so Ollama never silently truncates the start of the prompt.
    """
    settings = deps.settings
    system = SystemMessage(SYSTEM_PROMPT)
    fixed = approx_tokens(system) + (deps.tool_tokens if with_tools else 0)
    # A model that measured its server's tokenizer (graph.model.openai_model) says how many real tokens one
    # estimated token is; the window is sized in estimated tokens.
    scale = float(getattr(deps.model, "token_scale", 1.0))
    room = int((settings.llm.num_ctx - settings.inference.max_tokens) / scale)
    budget = max(room - fixed, 256)

    def live() -> str:
        now = deps.services.clock.now()
        # The trader's preferences (tools.preferences): their risk per trade and language.
        limits = trader_limits(settings.risk, ctx.risk_per_trade_pct)
        market, portfolio = state.get("market"), state.get("portfolio")
        return live_context(market, portfolio, limits, now, ctx.language, ctx.session_symbol)

    history, pinned = model_window(state.get("messages", []), settings.context.max_history, budget, live)
    return [system, *as_sent(history)], pinned


async def ask_model(
    deps: Deps, state: State, pins: list[HumanMessage], ctx: Context
) -> list[AIMessage | HumanMessage]:
    """The model's reply, preceded by the trader's message when this call pinned its live context (also put
    in `pins` before the call, so a failed call still stores it: the turn keeps the context and window start
    it was sent with, and the next request renders it byte-identically instead of breaking the KV-cache
    prefix there). The stored turns carry a reference to their live-context text, which is put back here
    for the prompt; a turn pinned now has its text written once to the session's hash and the reference
    stored in its place (graph.live_contexts)."""
    over_limit = state.get("tool_rounds", 0) >= deps.settings.context.max_tool_rounds
    runnable: Runnable[Any, Any] = deps.model if over_limit else deps.bound_model
    redis, thread = deps.services.redis, run_thread_id()
    # The turns' live contexts are stored outside the checkpoint (graph.live_contexts): back inline here.
    stored = await live_contexts.hydrate(redis, deps.prefix, thread, state.get("messages", []))
    seen = State(**{**state, "messages": stored})
    if live_contexts.needs_pin(stored):  # the snapshots the new live context is made of (not checkpointed)
        seen.update(await context_snapshots(deps, ctx))
    messages, pinned = prompt(deps, seen, with_tools=not over_limit, ctx=ctx)
    if pinned is not None:
        settings = deps.settings
        keep = (
            stored_message_cap(deps) + settings.checkpoints.keep_last if settings.checkpoints.keep_last else 0
        )
        pinned = await live_contexts.store(redis, deps.prefix, thread, pinned, settings.redis.ttl, keep)
        pins.append(pinned)
    try:
        reply = await runnable.ainvoke(messages)
    except ModelUnavailable:
        raise  # already categorised, with a message for the trader
    except Exception as exc:  # any other model failure still gets a category and a clear message
        log.exception("model call failed")
        raise ModelUnavailable.unexpected(exc) from exc
    message = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
    if over_limit and message.tool_calls:
        # Past the bound the model may not call tools any more; keep its words, drop the calls.
        message = AIMessage(content=text(message) or TOOL_LIMIT, id=message.id)
    # The server's timings and model name were read during the call (graph.model); every checkpoint stores
    # the whole conversation, and they were ~60 % of an answer's bytes there. The token usage stays.
    message = message.model_copy(update={"response_metadata": {}})
    return [pinned, message] if pinned is not None else [message]


def make_reason(deps: Deps) -> Node:
    async def reason(state: State, runtime: Runtime[Context]) -> State:
        messages = list(state.get("messages", []))
        last = messages[-1] if messages else None
        if isinstance(last, HumanMessage):
            # Parsed once, by the facade (graph.slash.command_state), or here for a run started without it.
            reply = slash_reply(command_of(state.get("command"), text(last).strip()))
            if reply is not None:
                return reply
        if state.get("slash") and isinstance(last, ToolMessage):
            return State(messages=[AIMessage(content=rendered_results(messages))])
        ctx = required(runtime.context)  # fail closed: no run without its trader
        template, category = MODEL_DOWN, "error"
        pins: list[HumanMessage] = []
        try:
            return State(messages=[*await ask_model(deps, state, pins, ctx)])
        except ModelUnavailable as exc:
            error, category = str(exc), exc.category.value
            template = MODEL_UNUSABLE if exc.category in UNUSABLE else MODEL_DOWN
        except Exception as exc:  # any model failure: the trader gets a message, the thread stays usable
            log.exception("model call failed")
            error = f"{type(exc).__name__}: {exc}"
        fallback = template.format(error=error)
        if isinstance(last, ToolMessage):
            fallback = rendered_results(messages) + "\n\n" + fallback
        # The model later sees a short note, not the trader's ~100-token explanation (prompts/window.py).
        answer = AIMessage(content=fallback, additional_kwargs={MODEL_VIEW: NO_ANSWER.format(category)})
        return State(messages=[*pins, answer], notice="model_unavailable")

    return reason
