"""`copilot signal|analyze|portfolio` against the real Redis and the shared data, as a trader runs them."""

import json
from pathlib import Path

import pytest

from server.cli import main


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS__PREFIX", key_prefix)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("FALLBACK_DATA_DIR", str(shared_data))
    monkeypatch.setenv("LOGGING__FILE", "")


def test_signal_analysis_and_portfolio(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signal", "XAUUSD", "--timeframe", "15m"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Signal XAUUSD 15m: ") and "technical engine" in out
    assert main(["analyze", "XAUUSD"]) == 0
    analysis = json.loads(capsys.readouterr().out)
    assert analysis["symbol"] == "XAUUSD" and analysis["source"] == "technical_engine"
    levels = analysis["key_levels"]
    assert all(r >= analysis["current_price"] for r in levels["resistance"])
    assert all(s <= analysis["current_price"] for s in levels["support"])
    assert main(["portfolio"]) == 0
    assert "Balance 10000.0" in capsys.readouterr().out


def test_unknown_symbol_is_one_clear_message(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signal", "XAUUSDX"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Unknown symbol 'XAUUSDX'" in captured.err
    assert "Traceback" not in captured.err


def test_bad_config_value_is_one_clear_message(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RISK__MAX_OPEN_POSITIONS", "-1")
    assert main(["portfolio"]) == 2
    err = capsys.readouterr().err
    assert "risk.max_open_positions" in err and "greater than or equal to 0" in err
