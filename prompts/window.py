"""What the model sees of the conversation: a block-trimmed window with the live context in each trader turn.

Ollama renders a chat through the model's template after merging every system message into the top system
block and consecutive same-role messages into one; the Llama 3.x templates put the tool list and the answer
header only after the *last* message, and only when it is a user (or tool) message. Ollama also reuses its KV
cache only for an identical prompt prefix. Hence:

- **Live context inside the trader's turn.** The first time a turn is sent, the live context (prices,
  portfolio, limits, time) is pinned on the trader's HumanMessage (`additional_kwargs["live_context"]`); the
  trader's words stay its content, so the session history shows them unchanged. It is sent as a user message
  right before those words, which Ollama merges into the same user turn. Every later request renders that
  turn byte-identically, so the prompt only grows at its end.
- **Block trimming.** The window is append-only; at a new turn, when it holds more than 2×N counted
  messages (or more than the token budget), it is cut back to the newest N or fewer (half the budget),
  starting at a trader message so tool rounds stay whole. N is `context.max_history` and counts a trader
  turn as its trader message and its answer: the turn's tool rounds (AI tool calls and their ToolMessages)
  are part of that turn and count only in tokens (`counted`), so a turn with five tool rounds does not bring
  the next cut five turns closer (each cut re-evaluates the whole window after the system prompt). Its first
  message is pinned on the turn (`additional_kwargs["window_from"]`), so every model call of a turn, and the
  turns after it until the next cut, start the window at the same message. Earlier messages are never
  reordered or rewritten. The token budget bounds every window whatever the count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from prompts.system import approx_tokens, trim_history

LIVE_CONTEXT = "live_context"
WINDOW_FROM = "window_from"
MODEL_VIEW = "model_view"  # on an AIMessage: what the model sees of it instead of its content
CHANGED_ONLY = " (solo lo que cambió / only what changed)"  # the rest: as in the previous block


def _tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(approx_tokens(m) for m in as_sent(messages))


def counts(message: BaseMessage) -> bool:
    """Whether a message counts against `context.max_history`: a trader message or an answer, not a tool
    round's messages (an AI message with tool calls, a ToolMessage), which belong to their trader turn."""
    return isinstance(message, HumanMessage) or (isinstance(message, AIMessage) and not message.tool_calls)


def counted(messages: Sequence[BaseMessage]) -> int:
    """How many of `messages` count against `context.max_history` (`counts`)."""
    return sum(counts(m) for m in messages)


def _humans(messages: Sequence[BaseMessage], start: int = 0) -> list[int]:
    return [i for i in range(start, len(messages)) if isinstance(messages[i], HumanMessage)]


def _index(messages: Sequence[BaseMessage], message_id: object) -> int | None:
    if not message_id:
        return None
    return next((i for i, m in enumerate(messages) if m.id == message_id), None)


def _block_start(
    messages: Sequence[BaseMessage], newest: int, max_history: int, budget: int, extra: int
) -> int:
    """Where this turn's window starts: the previous turn's start, unless the window outgrew 2×N counted
    messages or the budget (then the earliest trader message leaving at most N counted messages and half the
    budget). `extra`: tokens the newest turn's live context adds."""
    previous = next(
        (
            messages[i]
            for i in range(newest - 1, -1, -1)
            if isinstance(messages[i], HumanMessage) and WINDOW_FROM in messages[i].additional_kwargs
        ),
        None,
    )
    start = _index(messages, previous.additional_kwargs[WINDOW_FROM]) if previous is not None else None
    if start is not None and not isinstance(messages[start], HumanMessage):
        start = None
    if start is not None:
        span = messages[start:]
        if counted(span) <= 2 * max_history and _tokens(span) + extra <= budget:
            return start
    for i in _humans(messages, start or 0):
        tail = messages[i:]
        if i >= newest or (counted(tail) <= max_history and _tokens(tail) + extra <= budget // 2):
            return i
    return newest


def model_window(
    messages: Sequence[BaseMessage], max_history: int, budget: int, live: Callable[[], str]
) -> tuple[list[BaseMessage], HumanMessage | None]:
    """The history the model sees (stored messages, to be passed through `as_sent`), and the newest trader
    message with the live context and window start pinned on it when this call pinned them (the turn's first
    model call): the node stores that copy (same id) so the checkpoint keeps them. `budget` is the tokens left
    for history; when a turn's tool results push the window past it, the window is cut back to the turn
    itself, and a turn that alone is larger is trimmed by `trim_history` as a last resort.
    """
    humans = _humans(messages)
    if not humans:
        return list(trim_history(list(messages), budget)), None
    newest = humans[-1]
    turn = messages[newest]
    pinned_now: HumanMessage | None = None
    if LIVE_CONTEXT not in turn.additional_kwargs:
        context = live()
        start = _block_start(messages, newest, max_history, budget, approx_tokens(HumanMessage(context)))
        kwargs = {**turn.additional_kwargs, LIVE_CONTEXT: context}
        if messages[start].id:
            kwargs[WINDOW_FROM] = messages[start].id
        pinned_now = HumanMessage(content=turn.content, id=turn.id, additional_kwargs=kwargs)
        turn = pinned_now
        messages = [*messages[:newest], turn, *messages[newest + 1 :]]
    else:
        found = _index(messages, turn.additional_kwargs.get(WINDOW_FROM))
        start = found if found is not None and found <= newest else newest
    window = list(messages[start:])
    if _tokens(window) > budget:  # tool results outgrew the budget: a block cut to this turn, then trimming
        window = list(messages[newest:])
        if _tokens(window) > budget:
            spent = approx_tokens(HumanMessage(str(turn.additional_kwargs[LIVE_CONTEXT])))
            window = trim_history(window, budget - spent) or [turn]
    return window, pinned_now


def as_sent(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The window as it goes to the model: each trader message with a pinned live context is preceded by it as
    a user message of its own (Ollama merges the two into one user turn: context, blank line, the trader's
    words), whole for the window's first and as `context_since` the previous one after that; an answer
    with a MODEL_VIEW is sent as that. Deterministic, so a turn renders the same in every request."""
    out: list[BaseMessage] = []
    previous: str | None = None
    for message in messages:
        context = message.additional_kwargs.get(LIVE_CONTEXT) if isinstance(message, HumanMessage) else None
        if context:
            out.append(HumanMessage(context_since(previous, str(context))))
            previous = str(context)
        view = message.additional_kwargs.get(MODEL_VIEW) if isinstance(message, AIMessage) else None
        out.append(AIMessage(str(view), id=message.id) if view else message)
    return out


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """A live context's "## " sections: (header line, body lines); the first line heads the first."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not sections or line.startswith("## "):
            sections.append((line, []))
        else:
            sections[-1][1].append(line)
    return sections


def _line_key(line: str) -> str:
    return line.split(": ", 1)[0] if ": " in line else line


def context_since(previous: str | None, current: str) -> str:
    """`current` as the lines that changed since `previous` (whole when there is none): its first line with
    CHANGED_ONLY, then per section the new or changed lines under the section's header; a section that
    lost a line (a closed position) whole; an unchanged section left out."""
    if previous is None:
        return current
    before = dict(_sections(previous))
    out: list[str] = []
    for n, (header, lines) in enumerate(_sections(current)):
        old = before.get(header)
        if old is not None and lines == old:
            if n == 0:
                out.append(header + CHANGED_ONLY)
            continue
        if old is not None and {_line_key(line) for line in old} <= {_line_key(line) for line in lines}:
            lines = [line for line in lines if line not in old]
        out += [header + (CHANGED_ONLY if n == 0 else ""), *lines]
    return "\n".join(out)
