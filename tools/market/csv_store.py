"""The embedded market data service: CSV history in memory, resampled on demand, seen through a clock."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from tools.market.csv_formats import CsvImportError, Ohlcv, name_timeframe, read_ohlcv, spacing_timeframe
from tools.market.resample import resample
from tools.market.specs import spec_for
from tools.protocols import Clock, ServiceError, UnknownSymbolError
from tools.schemas import TIMEFRAME_MINUTES, Bar, Quote, SymbolSpec

CSV_PATTERNS = ("*.csv", "*.csv.gz")
log = logging.getLogger(__name__)


@dataclass
class _Series:
    symbol: str
    timeframe: str
    seconds: int  # length of one native bar
    data: Ohlcv
    path: Path

    def visible_end(self, now: datetime) -> int:
        """Number of bars fully closed at `now` (open + length <= now): nothing from the future leaks."""
        return int(np.searchsorted(self.data.times, math.floor(now.timestamp()) - self.seconds, side="right"))


def _utc(stamp: int | np.integer) -> datetime:
    return datetime.fromtimestamp(int(stamp), UTC)


def csv_files(directory: Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted({p for pattern in CSV_PATTERNS for p in directory.glob(pattern) if p.is_file()})


def file_symbol(path: Path) -> str:
    """The symbol a CSV file holds, from its name: XAUUSD_M1.csv.gz, else the part before the first "_"."""
    named = name_timeframe(path)
    return named[0] if named else path.name.split(".")[0].split("_")[0].upper()


class CsvMarketData:
    """MarketData over CSV files, one series per symbol at its native timeframe (the finest loaded)."""

    def __init__(
        self, specs: dict[str, SymbolSpec], clock: Clock, max_quote_age: timedelta = timedelta(days=4)
    ) -> None:
        self.specs = specs
        self.clock = clock
        # Beyond this age the last close is not a price anyone could trade at (e.g. a 2018 EURUSD file
        # replayed next to 2026 gold); a weekend plus a holiday stays under it.
        self.max_quote_age = max_quote_age
        self._series: dict[str, _Series] = {}

    def load_file(self, path: Path, symbol: str | None = None) -> str:
        """Load one CSV (any supported format); symbol and timeframe come from the name or the data."""
        path = Path(path)
        named = name_timeframe(path)
        spec = spec_for(self.specs, symbol or file_symbol(path))
        data = read_ohlcv(path)
        timeframe = named[1] if named else spacing_timeframe(data.times)
        if timeframe is None:
            raise CsvImportError(
                f"{path.name}: cannot tell the timeframe (name it like {spec.symbol}_M1.csv)"
            )
        current = self._series.get(spec.symbol)
        if current and TIMEFRAME_MINUTES[current.timeframe] <= TIMEFRAME_MINUTES[timeframe]:
            return spec.symbol  # keep the finer series: it can be resampled to everything the coarser can
        self._series[spec.symbol] = _Series(
            spec.symbol, timeframe, TIMEFRAME_MINUTES[timeframe] * 60, data, path
        )
        return spec.symbol

    def load_dir(self, directory: Path) -> list[str]:
        """Load every *.csv / *.csv.gz in `directory`; returns the symbols loaded, sorted."""
        return self.load_files(csv_files(directory))

    def load_files(self, paths: list[Path]) -> list[str]:
        """Load these CSV files; returns the symbols loaded, sorted.

        Files of symbols without a spec are skipped with a warning: prices without digits, pip size and
        contract size cannot be traded or shown safely, and one stray file must not stop the copilot.
        """
        loaded = set()
        for path in paths:
            try:
                loaded.add(self.load_file(path))
            except UnknownSymbolError as exc:
                log.warning("skipping %s: %s (add it under `symbols:` in the config)", path, exc)
        return sorted(loaded)

    def with_clock(self, clock: Clock) -> CsvMarketData:
        """A view of the same loaded history through another clock (no reload)."""
        view = CsvMarketData(self.specs, clock, self.max_quote_age)
        view._series = self._series
        return view

    def symbols(self) -> list[str]:
        return sorted(self._series)

    def native_timeframe(self, symbol: str) -> str:
        return self._get(symbol).timeframe

    def bar_count(self, symbol: str) -> int:
        return len(self._get(symbol).data)

    def source(self, symbol: str) -> Path:
        """The file a symbol's history was loaded from."""
        return self._get(symbol).path

    def history_range(self, symbol: str | None = None) -> tuple[datetime, datetime]:
        """(first bar open, last bar close) of one symbol, or spanning every loaded symbol."""
        series = [self._get(symbol)] if symbol else list(self._series.values())
        if not series:
            raise ServiceError("no market data loaded")
        first = min(int(s.data.times[0]) for s in series)
        last = max(int(s.data.times[-1]) + s.seconds for s in series)
        return _utc(first), _utc(last)

    def _get(self, symbol: str) -> _Series:
        spec = spec_for(self.specs, symbol)
        series = self._series.get(spec.symbol)
        if series is None:
            raise ServiceError(
                f"no market data loaded for {spec.symbol}; import a CSV with "
                f"`copilot data import FILE --symbol {spec.symbol}`"
            )
        return series

    def _visible(self, symbol: str) -> tuple[_Series, int, datetime]:
        series = self._get(symbol)
        now = self.clock.now()
        end = series.visible_end(now)
        if end == 0:
            first = _utc(series.data.times[0])
            raise ServiceError(
                f"no {series.symbol} data yet at {now:%Y-%m-%d %H:%M} UTC "
                f"(its history starts {first:%Y-%m-%d %H:%M} UTC)"
            )
        return series, end, now

    async def get_bars(self, symbol: str, timeframe: str = "5m", bars: int = 100) -> list[Bar]:
        """The last `bars` bars visible at now, oldest first; the newest may still be forming."""
        if timeframe not in TIMEFRAME_MINUTES:
            raise ServiceError(f"unknown timeframe '{timeframe}'; use one of {', '.join(TIMEFRAME_MINUTES)}")
        if bars < 1:
            raise ServiceError(f"bars must be at least 1, got {bars}")
        series, end, _ = self._visible(symbol)
        ratio = TIMEFRAME_MINUTES[timeframe] * 60 // series.seconds
        if TIMEFRAME_MINUTES[timeframe] * 60 < series.seconds:
            raise ServiceError(
                f"{series.symbol} history is {series.timeframe} bars; it cannot give {timeframe} bars "
                f"(use {series.timeframe} or coarser)"
            )
        if ratio == 1:
            start = max(0, end - bars)
            return self._to_bars(series.symbol, series.data, start, end)
        out = _resampled_tail(series, end, bars, ratio)
        return self._to_bars(series.symbol, out, max(0, len(out) - bars), len(out))

    async def get_quote(self, symbol: str) -> Quote:
        """Bid = last visible close, ask = bid + spread; `time` is when that price was current (bar close)."""
        series, end, now = self._visible(symbol)
        spec = self.specs[series.symbol]
        priced_at = _utc(series.data.times[end - 1] + series.seconds)
        if now - priced_at > self.max_quote_age:
            raise ServiceError(
                f"{series.symbol} has no recent price: its data ends {priced_at:%Y-%m-%d %H:%M} UTC, "
                f"now is {now:%Y-%m-%d %H:%M} UTC"
            )
        bid = spec.round_price(float(series.data.close[end - 1]))
        ask = spec.round_price(bid + spec.spread_pips * spec.pip_size)
        return Quote(symbol=series.symbol, time=priced_at, bid=bid, ask=ask)

    async def bars_since(self, symbol: str, since: datetime) -> list[Bar]:
        """Native bars still open at `since` or opened after it, and closed by now (SL/TP, alert checks).

        A bar that was forming at `since` is included: its later part may hold the price that hit a level.
        """
        series, end, _ = self._visible(symbol)
        start = int(np.searchsorted(series.data.times, since.timestamp() - series.seconds, side="right"))
        return self._to_bars(series.symbol, series.data, start, max(start, end))

    def _to_bars(self, symbol: str, data: Ohlcv, start: int, stop: int) -> list[Bar]:
        digits = self.specs[symbol].digits
        return [
            Bar(
                time=_utc(data.times[i]),
                open=round(float(data.open[i]), digits),
                high=round(float(data.high[i]), digits),
                low=round(float(data.low[i]), digits),
                close=round(float(data.close[i]), digits),
                volume=round(float(data.volume[i]), 6),
            )
            for i in range(start, stop)
        ]


def _resampled_tail(series: _Series, end: int, bars: int, ratio: int) -> Ohlcv:
    """At least `bars` complete-from-the-start buckets ending at native index `end` (or all there are)."""
    bucket_seconds = series.seconds * ratio
    window = (bars + 1) * ratio
    while True:
        start = max(0, end - window)
        out = resample(series.data, start, end, bucket_seconds)
        if start > 0:  # the first bucket may have lost its earlier bars to the window cut
            out = out.slice(1)
        if len(out) >= bars or start == 0:
            return out
        window *= 4
