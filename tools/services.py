"""The service container the tools and the graph use, built once from settings (embedded or HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tools.protocols import AlertService, Broker, Clock, MarketData, SignalSource
from tools.schemas import SymbolSpec

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from config import Settings


@dataclass
class Services:
    settings: Settings
    redis: aioredis.Redis
    specs: dict[str, SymbolSpec]
    clock: Clock
    market: MarketData
    signals: SignalSource
    broker: Broker
    alerts: AlertService
    closers: list[object] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in self.closers:
            await closer.aclose()  # type: ignore[attr-defined]
