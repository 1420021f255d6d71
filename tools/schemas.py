"""Domain types shared by the services, the tools and the graph (the seed's JSON contracts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The one list of timeframes (charts, tools, slash commands, settings, the CLI).
TIMEFRAME_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
SignalAction = Literal["LONG", "SHORT", "HOLD"]
# A JSON object as it came: a tool call's arguments from the model, a model's dump held in the graph state.
JsonObject = dict[str, Any]
Side = Literal["BUY", "SELL"]


class Bar(BaseModel):
    """One OHLCV bar; `time` is the bar's open time in UTC."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


class Quote(BaseModel):
    symbol: str
    time: datetime
    bid: float
    ask: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


class SymbolSpec(BaseModel):
    symbol: str
    digits: int
    pip_size: float
    contract_size: float
    min_lot: float
    max_lot: float
    lot_step: float
    quote_currency: str = "USD"
    spread_pips: float = 0.0

    def round_price(self, price: float) -> float:
        return round(price, self.digits)

    def pips(self, price_distance: float) -> float:
        return round(abs(price_distance) / self.pip_size, 1)

    def round_lots_down(self, lots: float) -> float:
        """Largest multiple of the lot step not above `lots` (never rounds risk up)."""
        steps = int(lots / self.lot_step + 1e-9)
        return round(steps * self.lot_step, 8)

    def money(self, price_distance: float, lots: float, price: float) -> float:
        """Account-currency (USD) value of a price move of `price_distance` on `lots`."""
        value = price_distance * self.contract_size * lots
        if self.quote_currency != "USD":
            value = value / price  # USD-based pairs (USDJPY): quote currency -> USD at `price`
        return round(value, 2)


class Signal(BaseModel):
    """The seed's signal schema. `confidence` is 0..1."""

    symbol: str
    timeframe: str = "5m"
    action: SignalAction
    confidence: float = Field(ge=0, le=1)
    entry_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    risk_reward: float | None = None
    amd_phase: str = "unknown"
    killzone: str = "none"
    reasoning: list[str] = []
    source: str = "technical_engine"
    generated_at: datetime | None = None


class ICTContext(BaseModel):
    killzone: str = "none"
    ote_zone: Literal["premium", "discount", "equilibrium"] = "equilibrium"
    score: float = 0.0


class KeyLevels(BaseModel):
    resistance: list[float] = []
    support: list[float] = []


class Analysis(BaseModel):
    """The seed's `analyze_market` result."""

    symbol: str
    current_price: float
    amd_phase: str = "unknown"
    ict_context: ICTContext = ICTContext()
    key_levels: KeyLevels = KeyLevels()
    recent_signals: list[Signal] = []
    trend: Literal["bullish", "bearish", "ranging"] = "ranging"
    volatility: Literal["low", "medium", "high"] = "medium"
    source: str = "technical_engine"
    as_of: datetime | None = None


class TradeIdea(BaseModel):
    """A new market order, the one shape it has from chat to broker: the slash parser and the model's
    `execute_trade` call (tools.trading_tools.ExecuteTradeArgs) make one, the risk gate judges it, an approval
    edit changes it, execute re-checks and sends it (OrderRequest). One name per field, the HTTP API's
    (a proposal's `side`, `size_lots`, `stop_loss`, `take_profit`); the tool schema and the broker's
    `/api/trade` body keep their own names (`action`, `size`) as aliases at those boundaries.

    No bounds here: a missing or misplaced stop is a rule's to say (graph.risk.rules); `size_lots` None means
    sized from the risk % per trade."""

    # NaN/inf prices or sizes pass `gt=0`-style checks inconsistently and break the money arithmetic.
    model_config = ConfigDict(allow_inf_nan=False, frozen=True)

    symbol: str
    side: Side
    size_lots: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None

    def edited(self, edits: dict[str, float]) -> TradeIdea:
        """This trade with an approval's edits applied (size_lots, stop_loss, take_profit)."""
        return self.model_copy(update={k: float(v) for k, v in edits.items() if k in EDITABLE})


# What an approval may edit of a trade (graph.approval_reply), by TradeIdea's names.
EDITABLE = ("size_lots", "stop_loss", "take_profit")


class OrderRequest(TradeIdea):
    """The seed's `/api/trade` body."""

    # A TradeIdea with its size and stop, for an account; on the wire (and in every dump) the side is
    # `action` and the size `size`, as the seed's platform named them.
    model_config = ConfigDict(
        allow_inf_nan=False,
        frozen=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    symbol: str
    side: Side = Field(alias="action")
    size_lots: float = Field(gt=0, alias="size", description="lots")
    stop_loss: float
    take_profit: float | None = None
    account_id: str | None = None


class OrderResult(BaseModel):
    """The seed's `/api/trade` answer, plus the idempotency key and whether it was a replay."""

    success: bool
    ticket: int | None = None
    executed_price: float | None = None
    slippage: float = 0.0
    message: str = ""
    idempotency_key: str | None = None
    duplicate: bool = False


class Position(BaseModel):
    ticket: int
    symbol: str
    type: Side
    size: float
    open_price: float
    current_price: float
    profit: float
    stop_loss: float | None = None
    take_profit: float | None = None
    open_time: datetime | None = None


class Portfolio(BaseModel):
    """The seed's `/api/portfolio` answer (money in the account currency)."""

    balance: float
    equity: float
    margin: float
    free_margin: float
    positions: list[Position] = []
    daily_pnl: float = 0.0
    weekly_pnl: float = 0.0
    account_id: str | None = None


class AlertRequest(BaseModel):
    """The seed's `/api/alerts` body."""

    model_config = ConfigDict(allow_inf_nan=False)

    symbol: str
    condition: Literal["above", "below"]
    price: float = Field(gt=0)
    message: str = ""


class Alert(BaseModel):
    alert_id: str
    symbol: str
    condition: Literal["above", "below"]
    price: float
    message: str = ""
    status: Literal["active", "triggered"] = "active"
    created_at: datetime | None = None
    triggered_at: datetime | None = None
    triggered_price: float | None = None
