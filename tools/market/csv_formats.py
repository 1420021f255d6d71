"""Strict OHLCV CSV reading: generic header CSV, MT4 History Center and MT5 exports, gzip by suffix.

Every row is validated; problems are collected with their line numbers and raised together, so a bad
file is rejected as a whole and the trader sees where to fix it.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
from tqdm import tqdm

from tools.protocols import ServiceError

# File-name suffix (MetaTrader style) <-> timeframe key of TIMEFRAME_MINUTES.
TF_CODES: dict[str, str] = {"M1": "1m", "M5": "5m", "M15": "15m", "H1": "1h", "H4": "4h", "D1": "1d"}
TF_BY_MINUTES: dict[int, str] = {1: "1m", 5: "5m", 15: "15m", 60: "1h", 240: "4h", 1440: "1d"}
CODE_BY_TF: dict[str, str] = {tf: code for code, tf in TF_CODES.items()}
_NAME_RE = re.compile(r"^(?P<symbol>[A-Za-z0-9.]+?)_(?P<code>M1|M5|M15|H1|H4|D1)\.csv(\.gz)?$", re.I)
_MT4_DATE_RE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_TIME_NAMES = ("datetime", "timestamp", "time", "date")
_VOLUME_NAMES = ("volume", "tickvol", "tick_volume", "vol", "real_volume")
_IGNORED_NAMES = {"spread"}
_KNOWN = {*_TIME_NAMES, "open", "high", "low", "close", *_VOLUME_NAMES, *_IGNORED_NAMES}
MT4_COLUMNS = ["date", "time", "open", "high", "low", "close", "volume"]
MAX_SHOWN = 8


class CsvImportError(ServiceError):
    """The file cannot be used as market data; the message lists the first problems by line number."""


@dataclass
class Ohlcv:
    """Columns of one bar series; `times` are bar open times in epoch seconds (UTC), strictly increasing."""

    times: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source_format: str = "generic"

    def __len__(self) -> int:
        return len(self.times)

    def slice(self, start: int, stop: int | None = None) -> Ohlcv:
        cut = slice(start, stop)
        return Ohlcv(
            self.times[cut],
            self.open[cut],
            self.high[cut],
            self.low[cut],
            self.close[cut],
            self.volume[cut],
            self.source_format,
        )

    @classmethod
    def empty(cls) -> Ohlcv:
        none = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), none, none, none, none, none)


@dataclass
class _Layout:
    fmt: str
    delimiter: str
    columns: list[str]
    has_header: bool


def open_text(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return path.open("r", newline="", encoding="utf-8-sig")


def name_timeframe(path: Path) -> tuple[str, str] | None:
    """(SYMBOL, timeframe) from a name like XAUUSD_M1.csv.gz, or None."""
    match = _NAME_RE.match(path.name)
    if not match:
        return None
    return match["symbol"].upper(), TF_CODES[match["code"].upper()]


def spacing_timeframe(times: np.ndarray) -> str | None:
    """The timeframe whose length is the median spacing of the bars (gaps do not move a median)."""
    if len(times) < 2:
        return None
    minutes = round(float(np.median(np.diff(times))) / 60)
    return TF_BY_MINUTES.get(minutes)


def _detect_layout(first_line: str) -> _Layout:
    stripped = first_line.strip()
    if "<" in stripped and ">" in stripped:
        delimiter = "\t" if "\t" in stripped else ","
        names = [c.strip().strip("<>").lower() for c in stripped.split(delimiter)]
        return _Layout("mt5", delimiter, names, True)
    head = stripped.split(",")[0].strip()
    if _MT4_DATE_RE.match(head):
        width = len(stripped.split(","))
        return _Layout("mt4", ",", MT4_COLUMNS[:width], False)
    delimiter = next((d for d in (",", ";", "\t") if d in stripped), ",")
    names = [c.strip().lower() for c in stripped.split(delimiter)]
    return _Layout("generic", delimiter, names, True)


def _column_plan(layout: _Layout) -> tuple[list[int], int | None, list[int]]:
    """Indexes of the time field(s), the volume column (optional) and open/high/low/close."""
    names = layout.columns
    unknown = [n for n in names if n not in _KNOWN]
    if unknown:
        raise CsvImportError(
            f"line 1: unknown column(s) {', '.join(repr(u) for u in unknown)}; expected a time column "
            "(datetime, or date + time), open, high, low, close and optionally volume"
        )
    missing = [n for n in ("open", "high", "low", "close") if n not in names]
    if missing:
        raise CsvImportError(f"line 1: missing column(s) {', '.join(missing)}")
    if "date" in names and "time" in names:
        time_idx = [names.index("date"), names.index("time")]
    else:
        found = next((n for n in _TIME_NAMES if n in names), None)
        if found is None:
            raise CsvImportError("line 1: no time column (datetime, timestamp, time or date)")
        time_idx = [names.index(found)]
    vol_name = next((n for n in _VOLUME_NAMES if n in names), None)
    ohlc_idx = [names.index(n) for n in ("open", "high", "low", "close")]
    return time_idx, (names.index(vol_name) if vol_name else None), ohlc_idx


def parse_time(text: str) -> int:
    """Epoch seconds of '2024-01-02 00:00[:00]', '2024.01.02 00:00', ISO with T/Z/offset; naive = UTC."""
    text = text.strip()
    if len(text) >= 10 and text[4] == "." and text[7] == ".":
        text = f"{text[:4]}-{text[5:7]}-{text[8:]}"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def _rows(handle: IO[str], layout: _Layout) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle, delimiter=layout.delimiter)
    for number, row in enumerate(reader, start=1):
        if number == 1 and layout.has_header:
            continue
        if row and any(cell.strip() for cell in row):
            yield number, row


def read_ohlcv(path: Path, progress: bool = False) -> Ohlcv:
    """Read and validate a whole file; raises CsvImportError naming up to MAX_SHOWN problem lines."""
    path = Path(path)
    if not path.is_file():
        raise CsvImportError(f"{path}: file not found")
    try:
        with open_text(path) as handle:
            first = handle.readline()
            if not first.strip():
                raise CsvImportError(f"{path.name}: the file is empty")
            layout = _detect_layout(first)
            handle.seek(0)
            return _read_rows(path, handle, layout, progress)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise CsvImportError(f"{path.name}: cannot read the file ({exc})") from None
    except CsvImportError as exc:
        message = str(exc)
        raise CsvImportError(
            message if message.startswith(path.name) else f"{path.name}: {message}"
        ) from None


def _read_rows(path: Path, handle: IO[str], layout: _Layout, progress: bool) -> Ohlcv:
    time_idx, vol_idx, ohlc_idx = _column_plan(layout)
    width = len(layout.columns)
    times: list[int] = []
    cols: list[list[float]] = [[], [], [], [], []]
    problems: list[str] = []
    count_bad = 0
    seen_line = 0  # line of the previous good timestamp, for ordering messages
    bar = tqdm(
        desc=f"reading {path.name}", unit=" rows", file=sys.stderr, disable=not progress, mininterval=0.5
    )
    for number, row in _rows(handle, layout):
        if number % 10_000 == 0:
            bar.update(number - bar.n)
        problem = None
        if len(row) != width:
            problem = f"expected {width} columns, found {len(row)}"
        else:
            try:
                stamp = parse_time(" ".join(row[i] for i in time_idx))
                values = _values(row, ohlc_idx, vol_idx)
            except ValueError as exc:
                problem = str(exc) if str(exc).startswith("bad ") else f"bad date/time {row[time_idx[0]]!r}"
            else:
                problem = _check_bar(values) or _check_order(stamp, times, seen_line)
        if problem:
            count_bad += 1
            if len(problems) < MAX_SHOWN:
                problems.append(f"  line {number}: {problem}")
            continue
        times.append(stamp)
        seen_line = number
        for column, value in zip(cols, values, strict=True):
            column.append(value)
    bar.update(len(times) + count_bad - bar.n)
    bar.close()
    if count_bad:
        more = f"\n  ... and {count_bad - len(problems)} more" if count_bad > len(problems) else ""
        raise CsvImportError(
            f"{path.name}: {count_bad} bad row(s), nothing imported:\n" + "\n".join(problems) + more
        )
    if not times:
        raise CsvImportError(f"{path.name}: no bars in the file")
    o, h, low, c, v = (np.asarray(col, dtype=np.float64) for col in cols)
    return Ohlcv(np.asarray(times, dtype=np.int64), o, h, low, c, v, source_format=layout.fmt)


def _values(row: list[str], ohlc_idx: list[int], vol_idx: int | None) -> list[float]:
    values = []
    for i in [*ohlc_idx, vol_idx]:
        if i is None:
            values.append(0.0)
            continue
        try:
            number = float(row[i])
        except ValueError:
            raise ValueError(f"bad number {row[i]!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"bad number {row[i]!r}")
        values.append(number)
    return values


def _check_bar(values: list[float]) -> str | None:
    open_, high, low, close, volume = values
    if high < low:
        return f"high {high} is below low {low}"
    if not low <= open_ <= high:
        return f"open {open_} is outside low..high ({low}..{high})"
    if not low <= close <= high:
        return f"close {close} is outside low..high ({low}..{high})"
    if volume < 0:
        return f"negative volume {volume}"
    if low <= 0:
        return f"non-positive price {low}"
    return None


def _check_order(stamp: int, times: list[int], previous_line: int) -> str | None:
    if not times or stamp > times[-1]:
        return None
    shown = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if stamp == times[-1]:
        return f"duplicate timestamp {shown} (same as line {previous_line})"
    return f"timestamp {shown} is earlier than line {previous_line} (rows must be sorted oldest first)"
