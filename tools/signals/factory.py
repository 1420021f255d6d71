"""Pick the SignalSource: the platform ML engine when its URL is set, else the technical engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools.protocols import Clock, MarketData, SignalSource
from tools.schemas import SymbolSpec
from tools.signals.http import HttpSignalSource
from tools.signals.technical import TechnicalEngine

if TYPE_CHECKING:
    from config import Settings


def build_signals(
    settings: Settings, market: MarketData, clock: Clock, specs: dict[str, SymbolSpec]
) -> SignalSource:
    url = settings.services.ml_engine_url.strip()
    if url:
        return HttpSignalSource(url, timeout=settings.tools.timeout, retries=settings.tools.retry_count)
    return TechnicalEngine(market, clock, specs)
