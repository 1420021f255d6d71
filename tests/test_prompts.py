"""System prompt content, the live-context message and history trimming."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from config.settings import RiskSettings
from prompts import SYSTEM_PROMPT, live_context, trim_history
from prompts.system import approx_tokens

LIMITS = RiskSettings.model_validate({})


def test_system_prompt_carries_the_seed_rules_in_both_languages() -> None:
    p = SYSTEM_PROMPT
    for needle in (
        "NUNCA ejecutes operaciones sin confirmación explícita",
        "NEVER trade without the trader's",
        "< 60%, recomienda ESPERAR",
        "Manipulation, recomienda NO OPERAR",
        "R:R y % de la cuenta",
        "PRIORIZA la preservación del capital",
        "Answer in the trader's language",
        "**Señal / Signal: [LONG/SHORT/HOLD]**",
        "- Stop Loss: [price] ([X] pips)",
        "**Riesgo / Risk:** [X]%",
    ):
        assert needle in p, needle
    assert "{" not in p  # no template slots: nothing live is formatted into the static prefix


def test_live_context_lists_market_portfolio_limits_and_time() -> None:
    market = {"symbol": "XAUUSD", "current_price": 4401.5, "amd_phase": "accumulation", "trend": "bullish",
              "ict_context": {"killzone": "london_open"}}  # fmt: skip
    portfolio = {"balance": 10000, "equity": 10150.5, "daily_pnl": -20, "positions": [
        {"ticket": 7, "type": "BUY", "size": 0.1, "symbol": "XAUUSD", "open_price": 4390.0,
         "stop_loss": 4380.0, "take_profit": 4420.0, "profit": 115.0}]}  # fmt: skip
    text = live_context(market, portfolio, LIMITS, datetime(2026, 3, 2, 8, 5, tzinfo=UTC))
    for needle in ("2026-03-02 08:05", "current_price: 4401.5", "killzone: london_open", "Equity: $10,150.50",
                   "Open positions: 1", "#7 BUY 0.1 XAUUSD @ 4390.0", "Max risk per trade: 1.0%",
                   "min confidence 60%"):  # fmt: skip
        assert needle in text, needle
    empty = live_context(None, None, LIMITS, datetime(2026, 3, 2, tzinfo=UTC))
    assert "Market: no disponible" in empty and "Portfolio: no disponible" in empty


def _turns(n: int) -> list[BaseMessage]:
    msgs: list[BaseMessage] = []
    for i in range(n):
        msgs.append(HumanMessage(f"question {i} " + "x" * 200))
        call_id = f"call{i}"
        msgs.append(
            AIMessage("", tool_calls=[{"name": "get_ml_signal", "args": {"symbol": "XAUUSD"}, "id": call_id}])
        )
        msgs.append(ToolMessage('{"action": "LONG"} ' + "y" * 200, tool_call_id=call_id))
        msgs.append(AIMessage(f"answer {i} " + "z" * 200))
    return msgs


def test_trim_keeps_newest_within_budget_and_never_splits_tool_groups() -> None:
    history = _turns(6)
    total = sum(approx_tokens(m) for m in history)
    for budget in range(10, total + 50, 17):
        kept = trim_history(history, budget)
        assert kept == history[len(history) - len(kept) :]  # a suffix: the newest messages, in order
        assert kept[-1] is history[-1]
        assert sum(approx_tokens(m) for m in kept) <= budget or len(kept) == 1
        assert not isinstance(kept[0], ToolMessage)
        for i, m in enumerate(kept):
            if isinstance(m, AIMessage) and m.tool_calls:
                follower = kept[i + 1]
                assert isinstance(follower, ToolMessage)
                assert follower.tool_call_id == m.tool_calls[0]["id"]
    assert trim_history(history, total) == history


def test_trim_splits_at_group_boundary_not_inside() -> None:
    history = _turns(2)
    # budget = the last tool group plus the final answer, minus one token: the tool group can't be half-kept
    tail = history[-3:]
    budget = sum(approx_tokens(m) for m in tail) - 1
    kept = trim_history(history, budget)
    assert kept == history[-1:]


def test_trim_drops_orphan_tool_messages() -> None:
    orphan = ToolMessage("result", tool_call_id="gone")
    kept = trim_history([orphan, HumanMessage("hi"), AIMessage("hello")], 10_000)
    assert [m.content for m in kept] == ["hi", "hello"]


def _window(messages: list[BaseMessage], n: int, budget: int, live: Callable[[], str]) -> list[BaseMessage]:
    """The window, storing the pinned trader message as the reason node does (same id, replaced in place)."""
    from prompts.window import model_window

    window, pinned = model_window(messages, n, budget, live)
    if pinned is not None:
        messages[next(i for i, m in enumerate(messages) if m.id == pinned.id)] = pinned
    return window


def _window_turn(
    messages: list[BaseMessage], text: str, n: int = 2, budget: int = 100_000
) -> list[BaseMessage]:
    """Append a trader message with an id, build the window (pinning it), then a stored answer."""
    messages.append(HumanMessage(text, id=f"h{len(messages)}"))
    window = _window(messages, n, budget, lambda: f"## Contexto actual / Current context\nfor {text}")
    messages.append(AIMessage(f"answer to {text}", id=f"a{len(messages)}"))
    return window


def test_window_grows_append_only_and_is_cut_in_blocks() -> None:
    from prompts.window import LIVE_CONTEXT, as_sent

    messages: list[BaseMessage] = []
    starts = []
    for i in range(8):
        window = _window_turn(messages, f"q{i}")
        starts.append(window[0].content)
        assert window[-1].content == f"q{i}" and len(window) <= 2 * 2 + 1
    # N=2: the window starts at q0 until it would pass 4 messages, then is cut back to the newest turn(s).
    assert starts == ["q0", "q0", "q2", "q2", "q4", "q4", "q6", "q6"]
    # The context is pinned on the trader's message, sent right before it, and the content stays theirs.
    first = messages[0]
    assert first.content == "q0" and first.additional_kwargs[LIVE_CONTEXT].endswith("for q0")
    sent = as_sent(messages[:2])
    assert [m.content for m in sent] == [first.additional_kwargs[LIVE_CONTEXT], "q0", "answer to q0"]


def test_a_turns_tool_rounds_count_as_part_of_it_not_against_max_history() -> None:
    from graph.messages import keep_recent
    from prompts.window import counted, counts

    messages: list[BaseMessage] = []
    starts = []
    for i in range(8):
        messages.append(HumanMessage(f"q{i}", id=f"h{len(messages)}"))
        window = _window(messages, 2, 100_000, lambda: "## Contexto actual / Current context")
        starts.append(window[0].content)
        for r in range(3):  # three tool rounds in every turn: 6 messages the message count would see
            call = {"name": "get_ml_signal", "args": {"symbol": "XAUUSD"}, "id": f"c{i}{r}"}
            messages.append(AIMessage("", tool_calls=[call], id=f"t{len(messages)}"))
            messages.append(ToolMessage("{}", tool_call_id=f"c{i}{r}", id=f"r{len(messages)}"))
            assert _window(messages, 2, 100_000, lambda: "unused")[0].content == starts[-1]
        messages.append(AIMessage(f"answer to q{i}", id=f"a{len(messages)}"))
    # As with plain turns (the test above): cut every second turn, not at every turn.
    assert starts == ["q0", "q0", "q2", "q2", "q4", "q4", "q6", "q6"]
    assert counted(messages) == 16 and len(messages) == 64
    # The stored conversation is bounded the same way, so it keeps the window's start.
    kept = keep_recent(messages, 8, counts)
    assert kept[0].content == "q4" and len(kept) == 32
    assert keep_recent(messages, 8)[0].content == "q7"  # by message count: only the newest turn fits


def test_window_pins_once_per_turn_and_honours_the_token_budget() -> None:
    from prompts.window import LIVE_CONTEXT, model_window

    messages: list[BaseMessage] = [HumanMessage("hola", id="h0")]
    calls = iter(["ctx one", "ctx two"])
    _window(messages, 10, 10_000, lambda: next(calls))
    again, pinned = model_window(messages, 10, 10_000, lambda: next(calls))  # the turn's second model call
    assert messages[0].additional_kwargs[LIVE_CONTEXT] == "ctx one" and again == messages and pinned is None
    for i in range(6):
        _window_turn(messages, f"long {i} " + "x" * 400, n=50, budget=400)
    window = _window(messages, 50, 400, lambda: "ctx")
    assert sum(approx_tokens(m) for m in window) <= 400 and window[0].content.startswith("long 5")


def test_a_later_context_sends_only_what_changed() -> None:
    from prompts.window import CHANGED_ONLY, context_since

    position = {"ticket": 7, "type": "BUY", "size": 0.1, "symbol": "XAUUSD", "open_price": 2000.0,
                "stop_loss": 1990.0, "take_profit": 2020.0, "profit": 5.0}  # fmt: skip
    market = {"symbol": "XAUUSD", "current_price": 2001.0, "amd_phase": "accumulation"}
    portfolio = {"balance": 10000, "equity": 10005, "positions": [position]}
    at = datetime(2026, 3, 2, 8, 5, tzinfo=UTC)
    first = live_context(market, portfolio, LIMITS, at)
    later = live_context({**market, "current_price": 2003.5}, portfolio, LIMITS, at.replace(minute=10))
    delta = context_since(first, later)
    assert context_since(None, first) == first
    assert delta.splitlines() == [
        "## Contexto actual / Current context" + CHANGED_ONLY,
        "Time (UTC): 2026-03-02 08:10",
        "current_price: 2003.5",
    ]  # the portfolio and the risk limits did not change: left out
    # A closed position is a line that went away: the portfolio section is sent whole.
    closed = live_context(market, {"balance": 10005, "equity": 10005, "positions": []}, LIMITS, at)
    sent = context_since(first, closed)
    assert "Balance: $10,005.00" in sent and "Open positions: 0" in sent and "Daily P&L: $0.00" in sent
    assert "Risk limits" not in sent and "current_price" not in sent
    assert context_since(first, first) == "## Contexto actual / Current context" + CHANGED_ONLY


def test_the_window_sends_the_first_context_whole_and_a_failed_answer_as_its_note() -> None:
    from prompts.window import CHANGED_ONLY, LIVE_CONTEXT, MODEL_VIEW, as_sent

    ctx = [f"## Contexto actual / Current context\nTime (UTC): 08:0{i}\nsymbol: XAUUSD" for i in (0, 5)]
    messages: list[BaseMessage] = [
        HumanMessage("q0", id="h0", additional_kwargs={LIVE_CONTEXT: ctx[0]}),
        AIMessage("The language model's answer could not be used (…)", additional_kwargs={MODEL_VIEW: "(x)"}),
        HumanMessage("q1", id="h1", additional_kwargs={LIVE_CONTEXT: ctx[1]}),
    ]
    sent = [m.content for m in as_sent(messages)]
    header = "## Contexto actual / Current context"
    assert sent == [ctx[0], "q0", "(x)", f"{header}{CHANGED_ONLY}\nTime (UTC): 08:05", "q1"]
    assert as_sent(messages[2:])[0].content == ctx[1]  # the window's first turn: whole
