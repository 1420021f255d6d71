"""The model's tools over the real embedded services (shared XAUUSD history, real Redis, manual clock)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from config import load_settings
from server.redis_embedded import EmbeddedRedis
from tools.market.clock import ManualClock
from tools.schemas import OrderRequest, Signal
from tools.services import Services, build_services
from tools.trading_tools import PROPOSAL_TOOLS, READ_ONLY_TOOLS, make_tools, tools_by_name

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # a Tuesday inside the XAUUSD history


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


@pytest.fixture
def tools(services: Services) -> dict[str, BaseTool]:
    return tools_by_name(make_tools(services, account_id=f"acct-{uuid.uuid4().hex[:8]}"))


def params(tool: BaseTool) -> dict[str, Any]:
    """The JSON schema the model is shown for this tool's arguments."""
    result: dict[str, Any] = convert_to_openai_tool(tool)["function"]["parameters"]
    return result


async def call(tool: BaseTool, args: dict[str, Any]) -> ToolMessage:
    """Invoke as the graph does (a ToolCall), so errors come back as ToolMessages."""
    msg = await tool.ainvoke({"type": "tool_call", "name": tool.name, "args": args, "id": "c1"})
    assert isinstance(msg, ToolMessage)
    return msg


def test_tool_names_and_schemas_mirror_the_seed(services: Services) -> None:
    tools = tools_by_name(make_tools(services))
    assert set(tools) == READ_ONLY_TOOLS | PROPOSAL_TOOLS and not READ_ONLY_TOOLS & PROPOSAL_TOOLS
    sig = params(tools["get_ml_signal"])
    assert sig["required"] == ["symbol"]
    assert sig["properties"]["symbol"]["enum"] == services.settings.risk.allowed_symbols
    assert sig["properties"]["timeframe"]["default"] == "5m"
    trade = params(tools["execute_trade"])
    assert trade["properties"]["action"]["enum"] == ["BUY", "SELL"]
    assert set(trade["required"]) == {"symbol", "action", "stop_loss", "take_profit"}  # size optional
    assert "account_id" not in json.dumps(trade) and tools["get_portfolio"].args == {}
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


async def test_get_ml_signal_returns_the_seed_schema(tools: dict[str, BaseTool]) -> None:
    msg = await call(tools["get_ml_signal"], {"symbol": "XAUUSD", "timeframe": "15m"})
    data = json.loads(str(msg.content))
    for key in ("action", "confidence", "entry_price", "stop_loss", "take_profit", "risk_reward", "amd_phase",
                "killzone", "reasoning"):  # fmt: skip
        assert key in data, key
    signal = Signal.model_validate(data)
    assert signal.symbol == "XAUUSD" and signal.timeframe == "15m" and msg.status == "success"


async def test_analyze_market_and_market_data(tools: dict[str, BaseTool]) -> None:
    analysis = json.loads(str((await call(tools["analyze_market"], {"symbol": "XAUUSD"})).content))
    assert 3886 <= analysis["current_price"] <= 5597  # the README's range for gold in this history
    assert {"amd_phase", "ict_context", "key_levels", "trend", "volatility"} <= set(analysis)
    bars = json.loads(str((await call(tools["get_market_data"], {"symbol": "XAUUSD", "bars": 12})).content))
    assert bars["timeframe"] == "5m" and len(bars["data"]) == 12
    times = [row["time"] for row in bars["data"]]
    assert times == sorted(times) and times[-1] <= NOW.strftime("%Y-%m-%d %H:%M")


async def test_portfolio_and_alert_use_the_runtime_account(services: Services) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    tools = tools_by_name(make_tools(services, account_id=account))
    portfolio = json.loads(str((await call(tools["get_portfolio"], {})).content))
    assert portfolio["balance"] == services.settings.broker.initial_balance and portfolio["positions"] == []
    args = {"symbol": "XAUUSD", "condition": "above", "price": 6000.123, "message": "breakout"}
    alert = json.loads(str((await call(tools["set_alert"], args)).content))
    assert alert["status"] == "active" and alert["price"] == 6000.12  # rounded to the symbol's 2 digits
    assert [a.alert_id for a in await services.alerts.list_alerts(account)] == [alert["alert_id"]]


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("get_ml_signal", {"symbol": "BTCUSD"}, "symbol"),
        ("get_ml_signal", {"symbol": "XAUUSD", "timeframe": "7m"}, "timeframe"),
        ("execute_trade", {"symbol": "XAUUSD", "action": "BUY", "size": -1, "stop_loss": 1, "take_profit": 2},
         "size"),
        ("execute_trade", {"symbol": "XAUUSD", "action": "HOLD", "stop_loss": 1, "take_profit": 2}, "action"),
        ("get_market_data", {"symbol": "XAUUSD", "bars": 100000}, "bars"),
        ("set_alert", {"symbol": "XAUUSD", "condition": "near", "price": 1, "message": ""}, "condition"),
    ],
)  # fmt: skip
async def test_bad_arguments_come_back_as_readable_errors(
    tools: dict[str, BaseTool], name: str, args: dict[str, Any], fragment: str
) -> None:
    msg = await call(tools[name], args)
    assert msg.status == "error"
    assert str(msg.content).startswith("Error: invalid arguments") and fragment in str(msg.content)


async def test_service_failure_is_an_error_result(tools: dict[str, BaseTool]) -> None:
    # The EURUSD history ends in 2018 and GBPUSD has none: the service refuses, the run must not die.
    msg = await call(tools["get_ml_signal"], {"symbol": "GBPUSD"})
    assert msg.status == "error" and str(msg.content).startswith("Error: ")


async def test_execute_trade_only_proposes_and_checks_sides(services: Services) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    tools = tools_by_name(make_tools(services, account_id=account))
    quote = await services.market.get_quote("XAUUSD")
    ok = await call(tools["execute_trade"], {"symbol": "XAUUSD", "action": "BUY", "stop_loss": quote.bid - 10,
                                             "take_profit": quote.ask + 20})  # fmt: skip
    data = json.loads(str(ok.content))
    assert data["status"] == "proposed" and data["entry_price"] == quote.ask and data["size"] is None
    assert (await services.broker.get_portfolio(account)).positions == []  # nothing reached the broker
    bad_sl = {"symbol": "XAUUSD", "action": "BUY", "size": 0.1, "stop_loss": quote.ask + 5,
              "take_profit": quote.ask + 20}  # fmt: skip
    wrong = await call(tools["execute_trade"], bad_sl)
    assert wrong.status == "error" and "stop loss must be below" in str(wrong.content)
    bad_step = {"symbol": "XAUUSD", "action": "SELL", "size": 0.015, "stop_loss": quote.bid + 10,
                "take_profit": quote.bid - 20}  # fmt: skip
    step = await call(tools["execute_trade"], bad_step)
    assert step.status == "error" and "multiple of 0.01" in str(step.content)


async def test_close_and_modify_check_the_ticket(services: Services) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    tools = tools_by_name(make_tools(services, account_id=account))
    quote = await services.market.get_quote("XAUUSD")
    order = OrderRequest(
        symbol="XAUUSD", action="BUY", size=0.01, stop_loss=quote.bid - 20, account_id=account
    )
    placed = await services.broker.place_order(order, idempotency_key=uuid.uuid4().hex)
    assert placed.success and placed.ticket
    close = json.loads(str((await call(tools["close_position"], {"ticket": placed.ticket})).content))
    assert close["kind"] == "close" and close["position"]["ticket"] == placed.ticket
    assert len((await services.broker.get_portfolio(account)).positions) == 1  # still open: only proposed
    missing = await call(tools["modify_position"], {"ticket": placed.ticket + 999, "stop_loss": 1.0})
    assert missing.status == "error" and f"open tickets: {placed.ticket}" in str(missing.content)
    empty = await call(tools["modify_position"], {"ticket": placed.ticket})
    assert empty.status == "error" and "stop_loss and/or take_profit" in str(empty.content)
