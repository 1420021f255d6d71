"""Build the market data service and its clock from settings: HTTP data service, or CSV + replay clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.market.clock import SystemClock, shared_replay_clock
from tools.market.csv_store import CsvMarketData, csv_files, file_symbol
from tools.market.http import HttpMarketData
from tools.market.specs import load_specs
from tools.protocols import Clock, MarketData, ServiceError

if TYPE_CHECKING:
    from config import Settings


def data_files(settings: Settings) -> list[Path]:
    """Every CSV in settings.data_dir, plus settings.fallback_data_dir's files (the shared history) of the
    symbols data_dir has none of: importing one symbol does not hide the shared history of the others."""
    primary = Path(settings.data_dir)
    fallback = Path(settings.fallback_data_dir)
    own = csv_files(primary)
    have = {file_symbol(path) for path in own}
    files = own + [path for path in csv_files(fallback) if file_symbol(path) not in have]
    if not files:
        raise ServiceError(
            f"no market data: neither data_dir ({primary}) nor fallback_data_dir ({fallback}) has CSV files; "
            "import one with `copilot data import FILE --symbol XAUUSD`"
        )
    return files


def load_history(settings: Settings) -> CsvMarketData:
    """The CSV history of data_files(settings), on the system clock until given the replay clock."""
    market = CsvMarketData(load_specs(settings), SystemClock())
    market.load_files(data_files(settings))
    return market


async def build_market(
    settings: Settings, redis: Any, clock: Clock | None = None, *, clock_owner: bool = False
) -> tuple[MarketData, Clock]:
    """The MarketData the tools use, and the clock every other embedded service must share with it.

    Without `clock`, the replay clock shared through Redis: `clock_owner` (the server) anchors it, every
    other process only reads it (tools.market.clock.shared_replay_clock)."""
    if settings.services.data_url:
        system = clock or SystemClock()
        market = HttpMarketData(
            settings.services.data_url,
            timeout=settings.tools.timeout,
            retries=settings.tools.retry_count,
            specs=load_specs(settings),
            clock=system,
        )
        return market, system
    # Reading and decompressing the history takes seconds of file I/O: off the event loop, so a server
    # (ours, or `langgraph dev`, which refuses blocking calls on its loop) keeps answering meanwhile.
    csv_market = await asyncio.to_thread(load_history, settings)
    if clock is None:
        start, end = csv_market.history_range()
        clock = await shared_replay_clock(redis, settings, start, end, owner=clock_owner)
    csv_market.clock = clock
    return csv_market, clock
