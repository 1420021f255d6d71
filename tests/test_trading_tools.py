"""The model's tools over the real embedded services (shared XAUUSD history, real Redis, manual clock), run
by the tools node's ToolNode with the account in the runtime context; the proposal schemas as the gate uses
them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from config import load_settings
from graph.audit import AuditTrail
from graph.deps import Deps
from graph.model.fake import ScriptedChatModel
from graph.nodes.tools import make_tools_node, tool_runner
from graph.state import State
from tools.context import Context
from tools.market.clock import ManualClock
from tools.redis_embedded import EmbeddedRedis
from tools.schemas import Signal
from tools.services import Services, build_services
from tools.trading_tools import (
    PROPOSAL_TOOLS,
    READ_ONLY_TOOLS,
    BadArguments,
    ClosePositionArgs,
    ExecuteTradeArgs,
    ModifyPositionArgs,
    make_tools,
    proposal_args,
    tools_by_name,
)

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # a Tuesday inside the XAUUSD history
Runner = CompiledStateGraph[Any, Context, Any, Any]


@pytest.fixture(scope="module")
async def services(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path_factory: Any
) -> AsyncIterator[Services]:
    # Module-scoped: loading the M1 history once keeps this file fast; each test uses its own account id.
    settings = load_settings(
        redis_url=redis_server.url,
        redis={"prefix": f"t{uuid.uuid4().hex[:10]}:"},
        data_dir=str(tmp_path_factory.mktemp("data")),
        fallback_data_dir=str(shared_data),
        logging={"file": None},
    )
    client = aioredis.from_url(redis_server.url, decode_responses=True)
    svc = await build_services(settings, client, ManualClock(NOW))
    yield svc
    await svc.aclose()
    await client.aclose()


@pytest.fixture(scope="module")
def tools(services: Services) -> dict[str, BaseTool]:
    return tools_by_name(make_tools(services))


@pytest.fixture(scope="module")
def runner(tools: dict[str, BaseTool]) -> Runner:
    """The tools node's ToolNode in a one-node graph: the runtime context reaches the tools as in the app."""
    graph = StateGraph(MessagesState, context_schema=Context)
    graph.add_node("tools", tool_runner(list(tools.values())))
    graph.add_edge(START, "tools")
    return graph.compile()


def params(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema the model is shown for this tool's arguments."""
    result: dict[str, Any] = convert_to_openai_tool(tool)["function"]["parameters"]
    return result


def account() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


async def call(runner: Runner, name: str, args: dict[str, Any], account_id: str = "paper") -> ToolMessage:
    """One tool call of a model message, run as the graph runs it (errors come back as ToolMessages)."""
    message = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1"}])
    state = await runner.ainvoke({"messages": [message]}, context=Context(account_id=account_id))
    result = state["messages"][-1]
    assert isinstance(result, ToolMessage) and result.tool_call_id == "c1"
    return result


def test_tool_names_and_schemas_mirror_the_seed(services: Services, tools: dict[str, BaseTool]) -> None:
    assert set(tools) == READ_ONLY_TOOLS | PROPOSAL_TOOLS and not READ_ONLY_TOOLS & PROPOSAL_TOOLS
    sig = params(tools["get_ml_signal"])
    assert sig["required"] == ["symbol"]
    assert sig["properties"]["symbol"]["enum"] == services.settings.risk.allowed_symbols
    assert sig["properties"]["timeframe"]["default"] == "5m"
    trade = params(tools["execute_trade"])
    assert trade["properties"]["action"]["enum"] == ["BUY", "SELL"]
    assert set(trade["required"]) == {"symbol", "action", "stop_loss", "take_profit"}  # size optional
    assert "account_id" not in json.dumps(trade) and tools["get_portfolio"].args == {}
    assert "runtime" not in json.dumps([params(t) for t in tools.values()])  # injected, never the model's
    alert = params(tools["set_alert"])
    assert alert["properties"]["condition"]["enum"] == ["above", "below"]


def test_every_property_has_one_type_and_settings_bounds(services: Services) -> None:
    """Ollama's tool properties take one `type` (no anyOf/null): each property has one, bounds where the
    settings define them, and the tools come in a fixed order (part of the cached prompt prefix)."""
    tools = make_tools(services)
    for tool in tools:
        for name, prop in params(tool)["properties"].items():
            assert isinstance(prop.get("type"), str) and "anyOf" not in prop, (tool.name, name, prop)
    assert [t.name for t in tools] == [t.name for t in make_tools(services)]
    size = params(tools_by_name(tools)["execute_trade"])["properties"]["size"]
    specs = [services.specs[s] for s in services.settings.risk.allowed_symbols]
    assert size["type"] == "number"
    assert size["minimum"] == min(s.min_lot for s in specs) and size["maximum"] == max(
        s.max_lot for s in specs
    )
    assert params(tools_by_name(tools)["get_market_data"])["properties"]["bars"]["maximum"] == 500


async def test_get_ml_signal_returns_the_seed_schema(runner: Runner) -> None:
    msg = await call(runner, "get_ml_signal", {"symbol": "XAUUSD", "timeframe": "15m"})
    data = json.loads(str(msg.content))
    for key in ("action", "confidence", "entry_price", "stop_loss", "take_profit", "risk_reward", "amd_phase",
                "killzone", "reasoning"):  # fmt: skip
        assert key in data, key
    signal = Signal.model_validate(data)
    assert signal.symbol == "XAUUSD" and signal.timeframe == "15m" and msg.status == "success"


async def test_analyze_market_and_market_data(runner: Runner) -> None:
    analysis = json.loads(str((await call(runner, "analyze_market", {"symbol": "XAUUSD"})).content))
    assert 3886 <= analysis["current_price"] <= 5597  # the README's range for gold in this history
    assert {"amd_phase", "ict_context", "key_levels", "trend", "volatility"} <= set(analysis)
    bars = json.loads(str((await call(runner, "get_market_data", {"symbol": "XAUUSD", "bars": 12})).content))
    assert bars["timeframe"] == "5m" and len(bars["data"]) == 12
    times = [row["time"] for row in bars["data"]]
    assert times == sorted(times) and times[-1] <= NOW.strftime("%Y-%m-%d %H:%M")


async def test_portfolio_and_alert_use_the_runtime_account(services: Services, runner: Runner) -> None:
    mine, other = account(), account()
    portfolio = json.loads(str((await call(runner, "get_portfolio", {}, mine)).content))
    assert portfolio["balance"] == services.settings.broker.initial_balance and portfolio["positions"] == []
    # An account the model names is not an argument: it is dropped, the runtime context decides.
    args = {"symbol": "XAUUSD", "condition": "above", "price": 6000.123, "message": "breakout",
            "account_id": other, "runtime": other}  # fmt: skip
    alert = json.loads(str((await call(runner, "set_alert", args, mine)).content))
    assert alert["status"] == "active" and alert["price"] == 6000.12  # rounded to the symbol's 2 digits
    assert [a.alert_id for a in await services.alerts.list_alerts(mine)] == [alert["alert_id"]]
    assert await services.alerts.list_alerts(other) == []


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("get_ml_signal", {"symbol": "BTCUSD"}, "symbol"),
        ("get_ml_signal", {"symbol": "XAUUSD", "timeframe": "7m"}, "timeframe"),
        ("get_market_data", {"symbol": "XAUUSD", "bars": 100000}, "bars"),
        ("set_alert", {"symbol": "XAUUSD", "condition": "near", "price": 1, "message": ""}, "condition"),
        ("set_alert", {"symbol": "XAUUSD", "condition": "above", "price": "nan"}, "price"),
    ],
)
async def test_bad_arguments_come_back_as_readable_errors(
    runner: Runner, name: str, args: dict[str, Any], fragment: str
) -> None:
    msg = await call(runner, name, args)
    assert msg.status == "error"
    assert str(msg.content).startswith("Error: invalid arguments — ") and fragment in str(msg.content)


async def test_service_failure_is_an_error_result(runner: Runner) -> None:
    # The EURUSD history ends in 2018 and GBPUSD has none: the service refuses, the run must not die.
    msg = await call(runner, "get_ml_signal", {"symbol": "GBPUSD"})
    assert msg.status == "error" and str(msg.content).startswith("Error: ")


async def test_an_unknown_tool_is_an_error_naming_the_known_ones(runner: Runner) -> None:
    msg = await call(runner, "place_order", {"symbol": "XAUUSD"})
    assert msg.status == "error" and "place_order" in str(msg.content)
    assert all(name in str(msg.content) for name in READ_ONLY_TOOLS | PROPOSAL_TOOLS), msg.content


@pytest.mark.parametrize("parallel", [True, False])
async def test_the_tools_node_runs_the_read_only_calls_and_leaves_proposals_to_the_gate(
    services: Services, parallel: bool
) -> None:
    tools_settings = services.settings.tools.model_copy(update={"parallel_execution": parallel})
    settings = services.settings.model_copy(update={"tools": tools_settings})
    model = ScriptedChatModel(replies=["unused"])
    deps = Deps(services, settings, model, AuditTrail(services.redis, settings.redis.prefix))
    graph = StateGraph(State, context_schema=Context)
    graph.add_node("tools", make_tools_node(deps))  # type: ignore[call-overload]
    graph.add_edge(START, "tools")
    calls = [
        ("get_ml_signal", {"symbol": "XAUUSD"}),
        ("execute_trade", TRADE),
        ("get_portfolio", {}),
        ("place_order", {}),
    ]
    message = AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in
                                                enumerate(calls)])  # fmt: skip
    start = State(messages=[message], tool_rounds=1, tools_used=["analyze_market"])
    stream = graph.compile().astream(
        start, context=Context(account_id=account()), stream_mode=["custom", "values"]
    )
    chunks: list[tuple[str, Any]] = [(mode, chunk) async for mode, chunk in stream]
    events = [chunk for mode, chunk in chunks if mode == "custom"]
    final = next(chunk for mode, chunk in reversed(chunks) if mode == "values")
    results = final["messages"][1:]
    assert [(m.tool_call_id, m.status) for m in results] == [("c0", "success"), ("c2", "success"),
                                                             ("c3", "error")]  # fmt: skip
    assert final["tool_rounds"] == 2
    assert final["tools_used"] == ["analyze_market", "get_ml_signal", "get_portfolio", "place_order"]
    assert final["turn_signal"] == final["last_signal"] == json.loads(results[0].content)
    assert [(e["event"], e["data"]["name"]) for e in events] == [
        ("tool", "get_ml_signal"), ("tool", "get_portfolio"), ("tool", "place_order"),
        ("tool_result", "get_ml_signal"), ("tool_result", "get_portfolio"), ("tool_result", "place_order"),
    ]  # fmt: skip
    assert [e["data"]["ok"] for e in events if e["event"] == "tool_result"] == [True, True, False]
    # Built once per process (the account is each call's context): one tool list, one binding.
    assert deps.tools is deps.tools and deps.bound_model is deps.bound_model
    assert model.bound == [[t.name for t in deps.tools]]


def test_proposal_tools_are_schemas_only(tools: dict[str, BaseTool]) -> None:
    for name in PROPOSAL_TOOLS:
        tool = tools[name]
        assert getattr(tool, "func", None) is None and getattr(tool, "coroutine", None) is None, name


TRADE = {"symbol": "XAUUSD", "action": "BUY", "stop_loss": 4380.5, "take_profit": 4420.0}


def test_proposal_args_use_the_schema_the_model_was_given(
    services: Services, tools: dict[str, BaseTool]
) -> None:
    trade = proposal_args(services, "execute_trade", TRADE)
    assert isinstance(trade, ExecuteTradeArgs) and type(trade) is tools["execute_trade"].args_schema
    assert (trade.symbol, trade.side, trade.size_lots, trade.stop_loss) == ("XAUUSD", "BUY", None, 4380.5)
    close = proposal_args(services, "close_position", {"ticket": 7})
    assert isinstance(close, ClosePositionArgs) and close.ticket == 7
    modify = proposal_args(services, "modify_position", {"ticket": 7, "take_profit": 4500})
    assert isinstance(modify, ModifyPositionArgs) and (modify.stop_loss, modify.take_profit) == (None, 4500)


@pytest.mark.parametrize(
    ("args", "size"),
    [
        ({"size": ""}, None),  # an empty field of a form: omitted
        ({"size": None}, None),
        ({"size": 0.25}, 0.25),  # a trader's edit
        ({"size": "0.25", "stop_loss": "4380.5"}, 0.25),  # numbers as text
    ],
)
def test_proposal_args_read_omitted_and_textual_numbers(
    services: Services, args: dict[str, Any], size: float | None
) -> None:
    trade = proposal_args(services, "execute_trade", {**TRADE, **args})
    assert isinstance(trade, ExecuteTradeArgs) and trade.size_lots == size and trade.stop_loss == 4380.5


@pytest.mark.parametrize(
    ("name", "args", "fragments"),
    [
        ("execute_trade", {**TRADE, "size": -1}, ["size: Input should be greater than 0"]),
        ("execute_trade", {**TRADE, "action": "HOLD"}, ["action: Input should be 'BUY' or 'SELL'"]),
        ("execute_trade", {**TRADE, "symbol": "BTCUSD"}, ["symbol: Input should be 'XAUUSD'"]),
        ("execute_trade", {**TRADE, "stop_loss": "nan"}, ["stop_loss: Input should be a finite number"]),
        ("execute_trade", {**TRADE, "take_profit": float("inf"), "size": "NaN"},
         ["size: Input should be a finite number", "take_profit: Input should be a finite number"]),
        ("execute_trade", {**TRADE, "stop_loss": ""}, ["stop_loss: Field required"]),
        ("close_position", {"ticket": 0}, ["ticket: Input should be greater than or equal to 1"]),
        ("close_position", {"ticket": 12.5}, ["ticket: Input should be a valid integer"]),
        ("modify_position", {"ticket": 3, "stop_loss": -5}, ["stop_loss: Input should be greater than 0"]),
        ("get_portfolio", {}, ["'get_portfolio' is not a proposal tool"]),
    ],
)  # fmt: skip
def test_bad_proposal_arguments_are_one_readable_line(
    services: Services, name: str, args: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(BadArguments) as raised:
        proposal_args(services, name, args)
    text = str(raised.value)
    assert isinstance(raised.value, ValueError) and "\n" not in text
    assert all(fragment in text for fragment in fragments), text
    if name in PROPOSAL_TOOLS:
        assert text.startswith("invalid arguments — "), text
