"""Timings of the market data hot paths on the real 300k-row gold history (not a test: prints figures)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.table import print_table
from config import load_settings
from tools.market.clock import ManualClock
from tools.market.csv_import import import_csv
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


async def main() -> None:
    specs = load_specs(load_settings())
    market = CsvMarketData(specs, ManualClock(datetime(2026, 8, 21, tzinfo=UTC)))
    rows: list[list[object]] = []
    t = time.perf_counter()
    market.load_file(SHARED / "XAUUSD_M1.csv.gz")
    rows.append([f"load XAUUSD_M1 ({market.bar_count('XAUUSD'):,} bars)", f"{time.perf_counter() - t:.2f} s"])
    for tf in ("1m", "5m", "1h", "4h", "1d"):
        t = time.perf_counter()
        for _ in range(20):
            await market.get_bars("XAUUSD", tf, 300)
        rows.append([f"get_bars {tf}, 300 bars", f"{(time.perf_counter() - t) / 20 * 1000:.1f} ms"])
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = import_csv(SHARED / "XAUUSD_M1.csv.gz", "XAUUSD", Path(tmp), False, specs)
        rows.append(
            [f"import {report.rows:,} rows (validate + write gz)", f"{time.perf_counter() - t:.2f} s"]
        )
    print_table(["operation", "time"], rows)


if __name__ == "__main__":
    asyncio.run(main())
