"""`copilot data import`: validate a user's CSV as a whole, then write it normalised into the data dir."""

from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from config import Settings, load_settings
from tools.market.csv_formats import (
    CODE_BY_TF,
    CsvImportError,
    Ohlcv,
    name_timeframe,
    read_ohlcv,
    spacing_timeframe,
)
from tools.market.csv_store import csv_files, file_symbol
from tools.market.specs import load_specs, spec_for
from tools.schemas import SymbolSpec

HEADER = "datetime,open,high,low,close,volume\n"


@dataclass
class ImportReport:
    symbol: str
    timeframe: str
    rows: int
    first: datetime
    last: datetime
    source_format: str
    destination: Path
    replaced: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"imported {self.rows:,} {self.timeframe} bars of {self.symbol} ({self.source_format} format), "
            f"{self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC -> {self.destination}"
        )


def import_csv(
    src: Path,
    symbol: str,
    data_dir: Path,
    progress: bool = False,
    specs: dict[str, SymbolSpec] | None = None,
) -> ImportReport:
    """Validate the whole of `src`, then atomically write DATA_DIR/{SYMBOL}_{TF}.csv.gz; nothing on error."""
    spec = spec_for(specs if specs is not None else load_specs(load_settings()), symbol)
    src = Path(src)
    data = read_ohlcv(src, progress=progress)
    named = name_timeframe(src)
    timeframe = spacing_timeframe(data.times) or (named[1] if named else None)
    if timeframe is None:
        raise CsvImportError(
            f"{src.name}: cannot tell the timeframe: the bars are not 1m/5m/15m/1h/4h/1d apart "
            f"(or there is a single bar), nothing imported"
        )
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    destination = data_dir / f"{spec.symbol}_{CODE_BY_TF[timeframe]}.csv.gz"
    _write_atomically(data, destination, spec.digits)
    # Older files of the symbol (another timeframe) would shadow or mix with the new history.
    replaced = [p for p in csv_files(data_dir) if p != destination and file_symbol(p) == spec.symbol]
    for old in replaced:
        old.unlink()
    return ImportReport(
        symbol=spec.symbol,
        timeframe=timeframe,
        rows=len(data),
        first=datetime.fromtimestamp(int(data.times[0]), UTC),
        last=datetime.fromtimestamp(int(data.times[-1]), UTC),
        source_format=data.source_format,
        destination=destination,
        replaced=replaced,
    )


def _write_atomically(data: Ohlcv, destination: Path, digits: int) -> None:
    """Write to a temp file in the same directory, then rename: readers never see a half-written file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", newline="") as out:
            out.write(HEADER)
            prices = f"{{:.{digits}f}}"
            for i in range(len(data)):
                stamp = datetime.fromtimestamp(int(data.times[i]), UTC).strftime("%Y-%m-%d %H:%M:%S")
                o, h, low, c = (
                    prices.format(float(col[i])) for col in (data.open, data.high, data.low, data.close)
                )
                out.write(f"{stamp},{o},{h},{low},{c},{float(data.volume[i])!r}\n")
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def list_data(settings: Settings) -> list[str]:
    """One line per loaded symbol (timeframe, bars, range, file), as `copilot data list` prints them."""
    from tools.market.factory import load_history

    market = load_history(settings)
    data_dir = Path(settings.data_dir).resolve()
    lines = [f"data from {settings.data_dir}, else {settings.fallback_data_dir} (per symbol)"]
    for symbol in market.symbols():
        first, last = market.history_range(symbol)
        source = market.source(symbol)
        lines.append(
            f"  {symbol:<8} {market.native_timeframe(symbol):>3}  {market.bar_count(symbol):>9,} bars  "
            f"{first:%Y-%m-%d %H:%M} -> {last:%Y-%m-%d %H:%M} UTC  {source}"
            + ("" if source.parent.resolve() == data_dir else " (fallback)")
        )
    return lines
