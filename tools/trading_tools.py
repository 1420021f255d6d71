"""The LangChain tools the model may call (the seed's TOOL_DEFINITIONS), each defined once.

The read-only tools are typed async functions over the Services container; the account they act on comes from
the graph's runtime context (`ToolRuntime`, injected by LangGraph's ToolNode), never from the model. The
proposal tools are argument schemas only: the graph routes their calls to the risk gate, which validates them
with `proposal_args`, against the same schema classes the model was given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, create_model

from config.validation import error_parts
from config.values import Timeframe
from tools.context import Context, required
from tools.schemas import AlertRequest, JsonObject, Side, TradeIdea
from tools.services import Services

READ_ONLY_TOOLS: frozenset[str] = frozenset(
    {"get_ml_signal", "analyze_market", "get_portfolio", "get_market_data", "set_alert"}
)
# Proposal tools are never executed by the tools node: the graph routes their calls to the risk gate.
PROPOSAL_TOOLS: frozenset[str] = frozenset({"execute_trade", "close_position", "modify_position"})

MAX_BARS = 500

# Argument schemas. Every property has one type (Ollama's tool properties take no anyOf/null), so an optional
# number shows as a plain `number`; the field order is fixed (the schemas are part of the cached prompt).
# The symbol enum (the configured allow-list) and the lot bounds (the symbols' specs) depend on the settings:
# `_schemas` narrows these classes to them, and the narrowed classes are the ones the model is given.
_OptionalPrice = Annotated[float | None, WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]
_Ticket = Annotated[
    int, Field(ge=1, description="Position ticket from get_portfolio / ticket de la posición")
]
_Timeframe = Annotated[Timeframe, Field(description="Timeframe de análisis")]


class _Args(BaseModel):
    # NaN passes no comparison, so no bound (nor any risk rule) would catch it; infinity breaks the money
    # arithmetic.
    model_config = ConfigDict(allow_inf_nan=False)


class _SymbolArgs(_Args):
    symbol: str = Field(description="Trading symbol / par")  # narrowed to the allowed symbols by `_schemas`


class GetMlSignalArgs(_SymbolArgs):
    timeframe: _Timeframe = "5m"


class AnalyzeMarketArgs(_SymbolArgs):
    pass


class GetMarketDataArgs(_SymbolArgs):
    timeframe: _Timeframe = "5m"
    bars: int = Field(100, ge=1, le=MAX_BARS, description=f"Number of bars (1-{MAX_BARS})")


class SetAlertArgs(_SymbolArgs):
    condition: Literal["above", "below"] = Field(description="above | below")
    price: float = Field(gt=0, description="Target price / precio objetivo")
    message: str = Field("", max_length=500, description="Alert text / mensaje de la alerta")


class ExecuteTradeArgs(TradeIdea, _SymbolArgs):
    """The model's `execute_trade` call: a TradeIdea, read by the tool's own names (`action`, `size`)."""

    side: Side = Field(alias="action", description="BUY or SELL")
    # The lot bounds are set by `_schemas`.
    size_lots: float | None = Field(None, gt=0, alias="size", description="Lots")
    stop_loss: float = Field(gt=0, description="Stop-loss price / precio de stop loss")
    take_profit: float = Field(gt=0, description="Take-profit price / precio de take profit")


def trade_call_args(trade: TradeIdea) -> JsonObject:
    """`trade` as the arguments of an `execute_trade` call (what a slash command puts in its tool call)."""
    return ExecuteTradeArgs.model_validate(
        {
            "symbol": trade.symbol,
            "action": trade.side,
            "size": trade.size_lots,
            "stop_loss": trade.stop_loss,
            "take_profit": trade.take_profit,
        }
    ).model_dump(by_alias=True, exclude_none=True)


class ClosePositionArgs(_Args):
    ticket: _Ticket


class ModifyPositionArgs(_Args):
    ticket: _Ticket
    stop_loss: _OptionalPrice = Field(None, gt=0, description="New stop-loss price (optional)")
    take_profit: _OptionalPrice = Field(None, gt=0, description="New take-profit price (optional)")


ProposalArgs = ExecuteTradeArgs | ClosePositionArgs | ModifyPositionArgs
_SymbolArgsT = TypeVar("_SymbolArgsT", bound=_SymbolArgs)


@dataclass(frozen=True)
class _Schemas:
    get_ml_signal: type[GetMlSignalArgs]
    analyze_market: type[AnalyzeMarketArgs]
    get_market_data: type[GetMarketDataArgs]
    set_alert: type[SetAlertArgs]
    execute_trade: type[ExecuteTradeArgs]


@lru_cache(maxsize=8)
def _schemas(symbols: tuple[str, ...], min_lots: float, max_lots: float) -> _Schemas:
    """The settings' narrowing of the schemas. Cached: the tools bound to the model and `proposal_args` share
    one class per schema."""
    symbol_type: Any = Literal.__getitem__(symbols)
    symbol = (symbol_type, Field(description=f"Trading symbol / par: {', '.join(symbols)}"))

    def narrowed(base: type[_SymbolArgsT], **fields: Any) -> type[_SymbolArgsT]:
        return create_model(base.__name__, __base__=base, __module__=__name__, symbol=symbol, **fields)

    lots = WithJsonSchema({"type": "number", "minimum": min_lots, "maximum": max_lots})
    size_text = f"Lots ({min_lots:g}-{max_lots:g}). Omit to size from the risk % per trade"
    size = (Annotated[float | None, lots], Field(None, gt=0, alias="size", description=size_text))
    return _Schemas(
        get_ml_signal=narrowed(GetMlSignalArgs),
        analyze_market=narrowed(AnalyzeMarketArgs),
        get_market_data=narrowed(GetMarketDataArgs),
        set_alert=narrowed(SetAlertArgs),
        execute_trade=narrowed(ExecuteTradeArgs, size_lots=size),
    )


def _schemas_of(services: Services) -> _Schemas:
    symbols = [s for s in services.settings.risk.allowed_symbols if s in services.specs]
    specs = [services.specs[s] for s in symbols]
    lots = (min(s.min_lot for s in specs), max(s.max_lot for s in specs)) if specs else (0.01, 100.0)
    return _schemas(tuple(symbols), *lots)


def invalid_arguments(error: ValidationError) -> str:
    """One line naming each bad argument: `invalid arguments — key: message; key: message`."""
    return "invalid arguments — " + "; ".join(error_parts(error.errors(), "arguments", show_input=True))


def _validation_message(error: ValidationError) -> str:
    return f"Error: {invalid_arguments(error)}. Fix the arguments and try again."


class BadArguments(ValueError):
    """A proposal's arguments do not fit its schema; the message is one line (`invalid_arguments`)."""


def proposal_args(services: Services, name: str, args: Mapping[str, object]) -> ProposalArgs:
    """A proposal call's arguments (from the model, a slash command or the trader's edits), validated with the
    schema class the model was given for that tool. A None or "" value counts as omitted; NaN and infinity are
    refused. Raises BadArguments."""
    schemas = _schemas_of(services)
    schema: type[ProposalArgs]
    if name == "execute_trade":
        schema = schemas.execute_trade
    elif name == "close_position":
        schema = ClosePositionArgs
    elif name == "modify_position":
        schema = ModifyPositionArgs
    else:
        raise BadArguments(f"{name!r} is not a proposal tool ({', '.join(sorted(PROPOSAL_TOOLS))})")
    given = {key: value for key, value in args.items() if value is not None and value != ""}
    try:
        return schema.model_validate(given)
    except ValidationError as exc:
        raise BadArguments(invalid_arguments(exc)) from exc


_ToolFunction = Callable[..., Awaitable[JsonObject | tuple[JsonObject, JsonObject]]]


def _read_only(
    schema: type[_Args] | None, description: str, with_artifact: bool = False
) -> Callable[[_ToolFunction], BaseTool]:
    """The tool of a typed async function. Bad arguments come back to the model as a readable error; other
    failures (a service refusing) are turned into error results by the ToolNode that runs the tool.
    `with_artifact`: the function returns (content, artifact); the artifact rides on the ToolMessage for the
    graph (the model reads the content only, rendered exactly as without it)."""

    def build(function: _ToolFunction) -> BaseTool:
        return StructuredTool.from_function(
            coroutine=function,
            name=function.__name__,
            description=description,
            args_schema=schema,  # None: inferred from the signature (no argument but the injected runtime)
            handle_validation_error=_validation_message,
            response_format="content_and_artifact" if with_artifact else "content",
        )

    return build


class _ProposalTool(StructuredTool):
    """A schema-only tool: bound to the model, never run (no function; the risk gate takes its calls)."""

    @property
    def tool_call_schema(self) -> Any:
        # The schema class itself, not LangChain's copy of its fields by name: its aliases (ExecuteTradeArgs'
        # `action`, `size`) are the argument names the model is shown.
        return self.args_schema


def _proposal(name: str, schema: type[_Args], description: str) -> BaseTool:
    return _ProposalTool(name=name, description=description, args_schema=schema)


def _account(runtime: ToolRuntime[Context]) -> str:
    return required(runtime.context).account_id


def _turn_key(runtime: ToolRuntime[Context], request: AlertRequest) -> str | None:
    """The idempotency key of what a chat turn creates: the turn (kept when a crash makes it run again)
    and what is created, so a re-run of the turn creates it once; None outside a chat turn."""
    turn = runtime.context.turn_id if runtime.context else None
    return f"{turn}:{request.model_dump_json()}" if turn else None


def make_tools(services: Services) -> list[BaseTool]:
    """All eight tools over `services`, in the order the model is shown them; built once per process (the
    account comes from each call's runtime context)."""
    schemas = _schemas_of(services)
    signal, analyze, bars = _market_tools(services, schemas)
    portfolio, alert = _account_tools(services, schemas)
    return [signal, analyze, portfolio, bars, alert, *_proposal_tools(schemas)]


# The tool functions close over `services`. Their annotations must resolve from this module's globals:
# LangChain and ToolNode read them (get_type_hints) to find the `runtime` argument they inject.
def _market_tools(services: Services, schemas: _Schemas) -> tuple[BaseTool, BaseTool, BaseTool]:
    @_read_only(
        schemas.get_ml_signal,
        "Get the current trading signal (LONG/SHORT/HOLD, confidence 0-1, entry, SL, TP, R:R, AMD phase, "
        "killzone, reasoning). Obtiene la señal de trading actual; úsala antes de recomendar una operación.",
        with_artifact=True,
    )
    async def get_ml_signal(symbol: str, timeframe: Timeframe = "5m") -> tuple[JsonObject, JsonObject]:
        # The signal as the model reads it and, as the artifact, as the graph keeps it (turn_signal).
        signal = (await services.signals.get_signal(symbol, timeframe)).model_dump(mode="json")
        return signal, signal

    @_read_only(
        schemas.analyze_market,
        "Analyse the market: AMD phase, ICT context (killzone, premium/discount), key support/resistance, "
        "trend and volatility. Analiza el estado actual del mercado.",
    )
    async def analyze_market(symbol: str) -> JsonObject:
        return (await services.signals.analyze(symbol)).model_dump(mode="json")

    @_read_only(
        schemas.get_market_data,
        "Recent OHLCV bars, oldest first. Datos de mercado históricos (velas OHLCV).",
    )
    async def get_market_data(symbol: str, timeframe: Timeframe = "5m", bars: int = 100) -> JsonObject:
        rows = await services.market.get_bars(symbol, timeframe, bars)
        data = [
            {
                "time": b.time.strftime("%Y-%m-%d %H:%M"),
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "volume": b.volume,
            }
            for b in rows
        ]
        return {"symbol": symbol, "timeframe": timeframe, "data": data}

    return get_ml_signal, analyze_market, get_market_data


def _account_tools(services: Services, schemas: _Schemas) -> tuple[BaseTool, BaseTool]:
    @_read_only(
        None,
        "Get the account: balance, equity, margin, open positions (with tickets) and daily/weekly P&L. "
        "Estado del portfolio.",
    )
    async def get_portfolio(runtime: ToolRuntime[Context]) -> JsonObject:
        return (await services.broker.get_portfolio(_account(runtime))).model_dump(mode="json")

    @_read_only(
        schemas.set_alert,
        "Create a price alert (above/below a price) for the trader. Configura una alerta de precio.",
    )
    async def set_alert(
        symbol: str,
        condition: Literal["above", "below"],
        price: float,
        message: str = "",
        *,
        runtime: ToolRuntime[Context],
    ) -> JsonObject:
        price = services.specs[symbol].round_price(price)
        request = AlertRequest(symbol=symbol, condition=condition, price=price, message=message)
        alert = await services.alerts.set_alert(request, _account(runtime), _turn_key(runtime, request))
        return {**alert.model_dump(mode="json"), "message": alert.message or "Alert created successfully"}

    return get_portfolio, set_alert


def _proposal_tools(schemas: _Schemas) -> list[BaseTool]:
    return [
        _proposal(
            "execute_trade",
            schemas.execute_trade,
            "PROPOSE a market order. It is NOT executed now: the risk rules check it and the trader must "
            "approve it explicitly. Always give stop_loss and take_profit; omit size to use the configured "
            "risk %. PROPONE una operación; nunca se ejecuta sin la aprobación explícita del trader.",
        ),
        _proposal(
            "close_position",
            ClosePositionArgs,
            "PROPOSE closing an open position by ticket; the trader must approve it. "
            "Propone cerrar una posición (requiere aprobación).",
        ),
        _proposal(
            "modify_position",
            ModifyPositionArgs,
            "PROPOSE new stop-loss and/or take-profit for an open position; the trader must approve it. "
            "Propone modificar SL/TP de una posición (requiere aprobación).",
        ),
    ]


def tools_by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}
