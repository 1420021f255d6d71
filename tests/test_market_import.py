"""CSV import: generic, MT4 and MT5 files, whole-file validation with line numbers, persistence, CLI."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config import Settings
from server.cli import main
from tools.market.clock import ManualClock
from tools.market.csv_formats import CsvImportError
from tools.market.csv_import import import_csv
from tools.market.csv_store import CsvMarketData
from tools.market.specs import load_specs
from tools.protocols import UnknownSymbolError
from tools.schemas import SymbolSpec

GENERIC = """datetime,open,high,low,close,volume
2024-01-02 00:00:00,2063.12,2064.50,2062.80,2063.90,123
2024-01-02 00:05:00,2063.90,2065.00,2063.10,2064.70,98
2024-01-02 00:10:00,2064.70,2064.90,2061.00,2061.50,150
"""
MT4 = (
    "2024.01.02,00:00,2063.12,2064.50,2062.80,2063.90,123\n"
    "2024.01.02,01:00,2063.90,2066.00,2063.00,2065.10,88\n"
)
MT5 = (
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    "2024.01.02\t00:00:00\t1.10410\t1.10450\t1.10400\t1.10420\t310\t0\t8\n"
    "2024.01.02\t00:15:00\t1.10420\t1.10470\t1.10390\t1.10460\t295\t0\t8\n"
    "2024.01.02\t00:30:00\t1.10460\t1.10480\t1.10440\t1.10445\t201\t0\t8\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows_of(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines()


@pytest.fixture
def specs(settings: Settings) -> dict[str, SymbolSpec]:
    return load_specs(settings)


def test_generic_import_writes_normalised_file(tmp_path: Path, specs: dict[str, SymbolSpec]) -> None:
    report = import_csv(write(tmp_path / "gold.csv", GENERIC), "xauusd", tmp_path / "data", False, specs)
    assert (report.symbol, report.timeframe, report.rows, report.source_format) == (
        "XAUUSD",
        "5m",
        3,
        "generic",
    )
    assert report.destination == tmp_path / "data" / "XAUUSD_M5.csv.gz"
    assert rows_of(report.destination)[:2] == [
        "datetime,open,high,low,close,volume",
        "2024-01-02 00:00:00,2063.12,2064.50,2062.80,2063.90,123.0",
    ]


def test_mt4_and_mt5_exports(tmp_path: Path, specs: dict[str, SymbolSpec]) -> None:
    mt4 = import_csv(write(tmp_path / "XAUUSD60.csv", MT4), "XAUUSD", tmp_path / "d", False, specs)
    assert (mt4.source_format, mt4.timeframe, mt4.first) == ("mt4", "1h", datetime(2024, 1, 2, tzinfo=UTC))
    mt5 = import_csv(write(tmp_path / "EURUSD_M15.csv", MT5), "EURUSD", tmp_path / "d", False, specs)
    assert (mt5.source_format, mt5.timeframe, mt5.rows) == ("mt5", "15m", 3)
    # Volume comes from TICKVOL (VOL is 0 for FX); SPREAD is ignored.
    assert rows_of(mt5.destination)[1] == "2024-01-02 00:00:00,1.10410,1.10450,1.10400,1.10420,310.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GENERIC.replace("2064.50", "abc"), r"line 2: bad number 'abc'"),
        (GENERIC.replace("2065.00,2063.10", "2062.00,2063.10"), r"line 3: high 2062.0 is below low 2063.1"),
        (GENERIC.replace("2061.00,2061.50", "2062.00,2061.50"), r"line 4: close 2061.5 is outside"),
        (GENERIC.replace(",150\n", "\n"), r"line 4: expected 6 columns, found 5"),
        (
            GENERIC.replace("00:10:00", "00:05:00"),
            r"line 4: duplicate timestamp 2024-01-02 00:05:00 \(same as line 3\)",
        ),
        (
            GENERIC.replace("00:10:00", "00:01:00"),
            r"line 4: timestamp 2024-01-02 00:01:00 is earlier than line 3",
        ),
        (
            GENERIC.replace("volume", "volume,colour").replace(",123", ",123,red"),
            r"unknown column\(s\) 'colour'",
        ),
    ],
)
def test_malformed_files_are_rejected_whole(
    tmp_path: Path, specs: dict[str, SymbolSpec], text: str, expected: str
) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(CsvImportError, match=expected):
        import_csv(write(tmp_path / "bad.csv", text), "XAUUSD", data_dir, False, specs)
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_problems_are_listed_together(tmp_path: Path, specs: dict[str, SymbolSpec]) -> None:
    text = GENERIC.replace("2064.50", "x").replace("2065.00", "y")
    with pytest.raises(CsvImportError) as err:
        import_csv(write(tmp_path / "bad.csv", text), "XAUUSD", tmp_path, False, specs)
    assert "2 bad row(s), nothing imported" in str(err.value)
    assert "line 2:" in str(err.value) and "line 3:" in str(err.value)


def test_unknown_symbol_is_refused(tmp_path: Path, specs: dict[str, SymbolSpec]) -> None:
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'BTCUSD'"):
        import_csv(write(tmp_path / "a.csv", GENERIC), "BTCUSD", tmp_path / "data", False, specs)
    assert not (tmp_path / "data").exists()


async def test_imported_history_is_loaded_by_a_new_store(
    tmp_path: Path, specs: dict[str, SymbolSpec]
) -> None:
    data_dir = tmp_path / "data"
    import_csv(write(tmp_path / "g.csv", GENERIC), "XAUUSD", data_dir, False, specs)
    store = CsvMarketData(specs, ManualClock(datetime(2024, 1, 2, 0, 15, tzinfo=UTC)))
    assert store.load_dir(data_dir) == ["XAUUSD"]
    bars = await store.get_bars("XAUUSD", "5m", 10)
    assert [b.close for b in bars] == [2063.90, 2064.70, 2061.50]
    # A re-import at another timeframe replaces the old file instead of mixing two histories.
    report = import_csv(write(tmp_path / "h.csv", MT4), "XAUUSD", data_dir, False, specs)
    assert report.replaced == [data_dir / "XAUUSD_M5.csv.gz"]
    assert sorted(p.name for p in data_dir.iterdir()) == ["XAUUSD_H1.csv.gz"]


def test_cli_import_and_list(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", settings.data_dir)
    monkeypatch.setenv("REDIS__PREFIX", settings.redis.prefix)
    src = write(tmp_path / "gold.csv", GENERIC)
    assert main(["data", "import", str(src), "--symbol", "XAUUSD", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "imported 3 5m bars of XAUUSD" in out and "XAUUSD_M5.csv.gz" in out
    assert main(["data", "list"]) == 0
    assert "XAUUSD" in capsys.readouterr().out
    bad = write(tmp_path / "bad.csv", GENERIC.replace("2064.50", "abc"))
    assert main(["data", "import", str(bad), "--symbol", "EURUSD", "--quiet"]) == 2
    assert "line 2: bad number 'abc'" in capsys.readouterr().err
    assert sorted(p.name for p in Path(settings.data_dir).iterdir()) == ["XAUUSD_M5.csv.gz"]
