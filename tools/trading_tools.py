"""The LangChain tools the model may call (the seed's TOOL_DEFINITIONS), built over the Services container."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Annotated, Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError, WithJsonSchema, create_model

from config.validation import error_parts
from tools.protocols import ServiceError
from tools.schemas import AlertRequest, Timeframe
from tools.services import Services

READ_ONLY_TOOLS: frozenset[str] = frozenset(
    {"get_ml_signal", "analyze_market", "get_portfolio", "get_market_data", "set_alert"}
)
# Proposal tools are never executed by the tools node: the graph routes their calls to the risk gate.
PROPOSAL_TOOLS: frozenset[str] = frozenset({"execute_trade", "close_position", "modify_position"})

MAX_BARS = 500


def _validation_message(error: ValidationError) -> str:
    parts = error_parts(error.errors(), "arguments")
    return "Error: invalid arguments — " + "; ".join(parts) + ". Fix the arguments and try again."


def _model(name: str, **fields: Any) -> type[BaseModel]:
    model: type[BaseModel] = create_model(name, **fields)
    return model


def _optional_number(description: str, **bounds: float) -> Any:
    """An optional number whose schema is a plain `number` (Ollama's tool properties have one type, no
    anyOf/null), with its bounds both as JSON Schema keywords and in the description the model reads."""
    schema: dict[str, Any] = {"type": "number", "description": description, **bounds}
    return (Annotated[float | None, WithJsonSchema(schema)], Field(None, gt=0, description=description))


@lru_cache(maxsize=8)
def _schemas(symbols: tuple[str, ...], min_lots: float, max_lots: float) -> dict[str, type[BaseModel]]:
    """Argument schemas, symbol enum from the configured allow-list and lot bounds from the symbols' specs;
    cached as tools are built per run. Every property has a type; the order is fixed (prompt caching)."""
    symbol_type: Any = Literal.__getitem__(symbols)
    symbol_field = (symbol_type, Field(description=f"Trading symbol / par: {', '.join(symbols)}"))
    sl = Field(gt=0, description="Stop-loss price / precio de stop loss")
    tp = Field(gt=0, description="Take-profit price / precio de take profit")
    ticket = (int, Field(ge=1, description="Position ticket from get_portfolio / ticket de la posición"))
    tf = (Timeframe, Field("5m", description="Timeframe de análisis"))
    size = _optional_number(
        f"Lots ({min_lots:g}-{max_lots:g}). Omit to size from the risk % per trade",
        minimum=min_lots,
        maximum=max_lots,
    )
    return {
        "get_ml_signal": _model("GetMlSignalArgs", symbol=symbol_field, timeframe=tf),
        "analyze_market": _model("AnalyzeMarketArgs", symbol=symbol_field),
        "get_portfolio": _model("GetPortfolioArgs"),
        "get_market_data": _model(
            "GetMarketDataArgs",
            symbol=symbol_field,
            timeframe=tf,
            bars=(int, Field(100, ge=1, le=MAX_BARS, description=f"Number of bars (1-{MAX_BARS})")),
        ),
        "set_alert": _model(
            "SetAlertArgs",
            symbol=symbol_field,
            condition=(Literal["above", "below"], Field(description="above | below")),
            price=(float, Field(gt=0, description="Target price / precio objetivo")),
            message=(str, Field("", max_length=500, description="Alert text / mensaje de la alerta")),
        ),
        "execute_trade": _model(
            "ExecuteTradeArgs",
            symbol=symbol_field,
            action=(Literal["BUY", "SELL"], Field(description="BUY or SELL")),
            size=size,
            stop_loss=(float, sl),
            take_profit=(float, tp),
        ),
        "close_position": _model("ClosePositionArgs", ticket=ticket),
        "modify_position": _model(
            "ModifyPositionArgs",
            ticket=ticket,
            stop_loss=_optional_number("New stop-loss price (optional)", exclusiveMinimum=0),
            take_profit=_optional_number("New take-profit price (optional)", exclusiveMinimum=0),
        ),
    }


DESCRIPTIONS: dict[str, str] = {
    "get_ml_signal": (
        "Get the current trading signal (LONG/SHORT/HOLD, confidence 0-1, entry, SL, TP, R:R, AMD phase, "
        "killzone, reasoning). Obtiene la señal de trading actual; úsala antes de recomendar una operación."
    ),
    "analyze_market": (
        "Analyse the market: AMD phase, ICT context (killzone, premium/discount), key support/resistance, "
        "trend and volatility. Analiza el estado actual del mercado."
    ),
    "get_portfolio": (
        "Get the account: balance, equity, margin, open positions (with tickets) and daily/weekly P&L. "
        "Estado del portfolio."
    ),
    "get_market_data": "Recent OHLCV bars, oldest first. Datos de mercado históricos (velas OHLCV).",
    "set_alert": "Create a price alert (above/below a price) for the trader. Configura una alerta de precio.",
    "execute_trade": (
        "PROPOSE a market order. It is NOT executed now: the risk rules check it and the trader must approve "
        "it explicitly. Always give stop_loss and take_profit; omit size to use the configured risk %. "
        "PROPONE una operación; nunca se ejecuta sin la aprobación explícita del trader."
    ),
    "close_position": (
        "PROPOSE closing an open position by ticket; the trader must approve it. "
        "Propone cerrar una posición (requiere aprobación)."
    ),
    "modify_position": (
        "PROPOSE new stop-loss and/or take-profit for an open position; the trader must approve it. "
        "Propone modificar SL/TP de una posición (requiere aprobación)."
    ),
}


class _Impl:
    """Tool bodies; each returns a JSON-able dict or raises ToolException("Error: ...")."""

    def __init__(self, services: Services, account_id: str) -> None:
        self.s = services
        self.account_id = account_id

    async def get_ml_signal(self, symbol: str, timeframe: str = "5m") -> dict[str, Any]:
        signal = await self.s.signals.get_signal(symbol, timeframe)
        return signal.model_dump(mode="json")

    async def analyze_market(self, symbol: str) -> dict[str, Any]:
        return (await self.s.signals.analyze(symbol)).model_dump(mode="json")

    async def get_portfolio(self) -> dict[str, Any]:
        return (await self.s.broker.get_portfolio(self.account_id)).model_dump(mode="json")

    async def get_market_data(self, symbol: str, timeframe: str = "5m", bars: int = 100) -> dict[str, Any]:
        rows = await self.s.market.get_bars(symbol, timeframe, bars)
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

    async def set_alert(self, symbol: str, condition: str, price: float, message: str = "") -> dict[str, Any]:
        spec = self.s.specs[symbol]
        request = AlertRequest.model_validate(
            {"symbol": symbol, "condition": condition, "price": spec.round_price(price), "message": message}
        )
        alert = await self.s.alerts.set_alert(request, self.account_id)
        return {**alert.model_dump(mode="json"), "message": alert.message or "Alert created successfully"}

    async def execute_trade(
        self,
        symbol: str,
        action: str,
        stop_loss: float,
        take_profit: float,
        size: float | None = None,
    ) -> dict[str, Any]:
        spec = self.s.specs[symbol]
        quote = await self.s.market.get_quote(symbol)
        entry = quote.ask if action == "BUY" else quote.bid
        # Sides are checked here too so the model gets an immediate, readable correction.
        if action == "BUY" and not (stop_loss < entry < take_profit):
            raise ToolException(
                f"Error: for a BUY at {entry} the stop loss must be below and the take profit above "
                f"the entry (got SL {stop_loss}, TP {take_profit})."
            )
        if action == "SELL" and not (take_profit < entry < stop_loss):
            raise ToolException(
                f"Error: for a SELL at {entry} the stop loss must be above and the take profit below "
                f"the entry (got SL {stop_loss}, TP {take_profit})."
            )
        if size is not None and spec.round_lots_down(size) != round(size, 8):
            raise ToolException(f"Error: size must be a multiple of {spec.lot_step} lots (got {size}).")
        return {
            "status": "proposed",
            "kind": "open",
            "symbol": symbol,
            "action": action,
            "size": size,
            "entry_price": spec.round_price(entry),
            "stop_loss": spec.round_price(stop_loss),
            "take_profit": spec.round_price(take_profit),
            "note": "Not executed: goes to the risk check and the trader's approval.",
        }

    async def _position(self, ticket: int) -> dict[str, Any]:
        portfolio = await self.s.broker.get_portfolio(self.account_id)
        for position in portfolio.positions:
            if position.ticket == ticket:
                return position.model_dump(mode="json")
        tickets = ", ".join(str(p.ticket) for p in portfolio.positions) or "none"
        raise ToolException(f"Error: no open position with ticket {ticket} (open tickets: {tickets}).")

    async def close_position(self, ticket: int) -> dict[str, Any]:
        position = await self._position(ticket)
        return {
            "status": "proposed",
            "kind": "close",
            "ticket": ticket,
            "position": position,
            "note": "Not executed: the trader must approve closing this position.",
        }

    async def modify_position(
        self, ticket: int, stop_loss: float | None = None, take_profit: float | None = None
    ) -> dict[str, Any]:
        if stop_loss is None and take_profit is None:
            raise ToolException("Error: give a new stop_loss and/or take_profit.")
        position = await self._position(ticket)
        return {
            "status": "proposed",
            "kind": "modify",
            "ticket": ticket,
            "stop_loss": stop_loss,
            "take_profit": take_profit,
            "position": position,
            "note": "Not executed: the trader must approve the change.",
        }


def _guard(fn: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Turn service failures into a tool error result the model can read, instead of killing the run."""

    async def wrapper(**kwargs: Any) -> dict[str, Any]:
        try:
            return await fn(**kwargs)
        except ToolException:
            raise
        except ServiceError as exc:
            raise ToolException(f"Error: {exc}") from exc
        except (ValueError, KeyError) as exc:
            raise ToolException(f"Error: {exc}") from exc

    return wrapper


def make_tools(services: Services, account_id: str = "paper") -> list[BaseTool]:
    """All eight tools bound to `services`; `account_id` comes from the runtime context, never the model."""
    symbols = [s for s in services.settings.risk.allowed_symbols if s in services.specs]
    specs = [services.specs[s] for s in symbols]
    lots = (min(s.min_lot for s in specs), max(s.max_lot for s in specs)) if specs else (0.01, 100.0)
    schemas = _schemas(tuple(symbols), *lots)
    impl = _Impl(services, account_id)
    tools: list[BaseTool] = []
    for name, schema in schemas.items():
        tools.append(
            StructuredTool.from_function(
                coroutine=_guard(getattr(impl, name)),
                name=name,
                description=DESCRIPTIONS[name],
                args_schema=schema,
                handle_tool_error=True,
                handle_validation_error=_validation_message,
            )
        )
    return tools


def tools_by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}
