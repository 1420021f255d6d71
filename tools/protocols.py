"""The service interfaces behind the tools; each has an embedded and an HTTP implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from tools.schemas import (
    Alert,
    AlertRequest,
    Analysis,
    Bar,
    OrderRequest,
    OrderResult,
    Portfolio,
    Quote,
    Signal,
)


class ServiceError(Exception):
    """A service refused or failed a request; the message is fit to show the trader."""


class UnknownSymbolError(ServiceError):
    pass


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """Current market time (UTC, timezone-aware)."""
        ...


class MarketData(Protocol):
    def symbols(self) -> list[str]: ...

    async def get_bars(self, symbol: str, timeframe: str = "5m", bars: int = 100) -> list[Bar]:
        """The last `bars` closed-or-current bars up to the clock's now, oldest first."""
        ...

    async def get_quote(self, symbol: str) -> Quote:
        """Bid/ask at the clock's now (bid = last visible close, ask = bid + the symbol's spread)."""
        ...

    async def bars_since(self, symbol: str, since: datetime) -> list[Bar]:
        """Finest-grained bars opened after `since` and closed by the clock's now (SL/TP and alert checks)."""
        ...


class SignalSource(Protocol):
    async def get_signal(self, symbol: str, timeframe: str = "5m") -> Signal: ...

    async def analyze(self, symbol: str) -> Analysis: ...


class Broker(Protocol):
    async def place_order(self, order: OrderRequest, idempotency_key: str) -> OrderResult:
        """Place a market order. The same key twice returns the first result and places nothing."""
        ...

    async def close_position(
        self, ticket: int, idempotency_key: str, account_id: str | None = None
    ) -> OrderResult: ...

    async def modify_position(
        self,
        ticket: int,
        *,
        stop_loss: float | None,
        take_profit: float | None,
        idempotency_key: str,
        account_id: str | None = None,
    ) -> OrderResult:
        """Change SL and/or TP of an open position (None leaves a level as it is). The same key twice
        returns the first result."""
        ...

    async def get_portfolio(self, account_id: str | None = None) -> Portfolio: ...

    async def find_order(self, idempotency_key: str, account_id: str | None = None) -> OrderResult | None:
        """What the broker did under this key (order, close or modify), or None when it has no record of it:
        how a crash between sending and recording an order is reconciled without guessing."""
        ...


class AlertService(Protocol):
    async def set_alert(
        self, alert: AlertRequest, account_id: str | None = None, key: str | None = None
    ) -> Alert:
        """Create the alert; with `key` (an idempotency key), once: the same key returns the first one."""
        ...

    async def list_alerts(self, account_id: str | None = None) -> list[Alert]: ...
