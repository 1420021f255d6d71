"""Build the market data service and its clock from settings: HTTP data service, or CSV + replay clock."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.market.clock import SystemClock, shared_replay_clock
from tools.market.csv_store import CsvMarketData, csv_files
from tools.market.http import HttpMarketData
from tools.market.specs import load_specs
from tools.protocols import Clock, MarketData, ServiceError

if TYPE_CHECKING:
    from config import Settings


def data_source_dir(settings: Settings) -> Path:
    """settings.data_dir when it holds CSV files, else settings.fallback_data_dir (the shared history)."""
    primary = Path(settings.data_dir)
    if csv_files(primary):
        return primary
    fallback = Path(settings.fallback_data_dir)
    if csv_files(fallback):
        return fallback
    raise ServiceError(
        f"no market data: neither data_dir ({primary}) nor fallback_data_dir ({fallback}) has CSV files; "
        "import one with `copilot data import FILE --symbol XAUUSD`"
    )


async def build_market(
    settings: Settings, redis: Any, clock: Clock | None = None
) -> tuple[MarketData, Clock]:
    """The MarketData the tools use, and the clock every other embedded service must share with it."""
    specs = load_specs(settings)
    if settings.services.data_url:
        system = clock or SystemClock()
        market = HttpMarketData(
            settings.services.data_url,
            timeout=settings.tools.timeout,
            retries=settings.tools.retry_count,
            specs=specs,
            clock=system,
        )
        return market, system
    csv_market = CsvMarketData(specs, SystemClock())
    csv_market.load_dir(data_source_dir(settings))
    if clock is None:
        start, end = csv_market.history_range()
        clock = await shared_replay_clock(redis, settings, start, end)
    csv_market.clock = clock
    return csv_market, clock
