"""`copilot signal|analyze|portfolio` against the real Redis and the shared data, as a trader runs them."""

import json
from pathlib import Path

import pytest

from server.cli import main
from server.in_thread import free_port
from tools.keys import replay_keys
from tools.redis_embedded import EmbeddedRedis


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


@pytest.fixture
def eurusd_only(env: None, monkeypatch: pytest.MonkeyPatch, shared_data: Path, tmp_path: Path) -> None:
    """Only the small real EURUSD history (2017-04-19 09:00 to 2018-02-07 16:00): loads in no time."""
    small = tmp_path / "eurusd"
    small.mkdir()
    (small / "EURUSD_H1.csv.gz").symlink_to(shared_data / "EURUSD_H1.csv.gz")
    monkeypatch.setenv("FALLBACK_DATA_DIR", str(small))


def test_clock_show_and_a_deliberate_reset(
    eurusd_only: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key_prefix: str
) -> None:
    assert main(["clock", "show"]) == 0
    out = capsys.readouterr().out
    assert f"anchor {replay_keys(key_prefix)[0]}: none stored" in out and "server: not running" in out
    monkeypatch.setenv("REPLAY__START", "2018-01-02T10:00:00Z")
    assert main(["clock", "reset"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("replay clock reset: now 2018-01-02 10:00:") and out.rstrip().endswith(
        "was no anchor"
    )
    # Later commands without REPLAY__START read that anchor; only another reset moves it.
    monkeypatch.delenv("REPLAY__START")
    assert main(["clock", "show"]) == 0
    out = capsys.readouterr().out
    assert "history 2018-01-02T10:00:00+00:00" in out and "market now: 2018-01-02 10:0" in out
    assert main(["clock", "reset"]) == 0
    out = capsys.readouterr().out
    assert "(REPLAY__START=auto, speed 1.0); was 2018-01-02 10:0" in out and "now 2018-01-08 16:00" in out


def test_clock_reset_is_refused_while_a_server_owns_the_clock(
    eurusd_only: None, capsys: pytest.CaptureFixture[str], redis_url: str, key_prefix: str
) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(replay_keys(key_prefix)[0], '{"start": "auto", "speed": 1.0, "history": "x", "wall": "y"}')
    client.set(replay_keys(key_prefix)[1], '{"pid": 4242, "host": "h", "start": "auto"}', px=15_000)
    assert main(["clock", "reset"]) == 2
    err = capsys.readouterr().err
    assert "copilot clock: a running server owns the replay clock (pid 4242 on h" in err
    assert (
        client.get(replay_keys(key_prefix)[0])
        == '{"start": "auto", "speed": 1.0, "history": "x", "wall": "y"}'
    )


def test_a_start_outside_the_history_is_one_line(
    eurusd_only: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLAY__START", "2030-01-01T00:00:00Z")
    for command in (["portfolio"], ["clock", "show"], ["serve"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert (
            "2030-01-01 00:00 UTC is outside the loaded history (2017-04-19 09:00 to 2018-02-07 16:00 UTC)"
            in err
        )


def test_a_command_stops_the_embedded_redis_it_started(
    eurusd_only: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    redis_server: EmbeddedRedis,
) -> None:
    port = free_port()
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("REDIS__PORT", str(port))
    monkeypatch.setenv("REDIS__DATA_DIR", str(tmp_path / "redis"))
    assert main(["clock", "show"]) == 0
    assert "server: not running" in capsys.readouterr().out
    assert not EmbeddedRedis(port=port, data_dir=tmp_path / "redis").ping()  # started for it, then stopped
    # A Redis already answering on the port (the suite's) is used and left running.
    monkeypatch.setenv("REDIS__PORT", str(redis_server.port))
    assert main(["portfolio"]) == 0
    assert "Balance 10000.0" in capsys.readouterr().out
    assert redis_server.ping()


def test_portfolio_asks_the_running_server_with_its_api_key(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    import redis

    from tests.support.api_support import api_settings, running_app

    settings = api_settings(redis_url, shared_data, tmp_path, server={"api_keys": {"k-alice": "alice"}})
    monkeypatch.setenv("REDIS__PREFIX", settings.redis.prefix)
    with running_app(settings) as url:
        # What `copilot serve` advertises in its clock heartbeat (an in-process server does not say its URL).
        heartbeat = json.dumps({"pid": 1, "host": "h", "url": url, "start": "auto", "speed": 1.0})
        redis.Redis.from_url(redis_url).set(replay_keys(settings.redis.prefix)[1], heartbeat, px=15_000)
        assert main(["portfolio"]) == 2
        assert f"the server at {url} needs an API key: --api-key KEY" in capsys.readouterr().err
        assert main(["portfolio", "--api-key", "k-alice"]) == 0
        out = capsys.readouterr().out
        assert "Balance 10000.0" in out and out.rstrip().endswith(f"(from the server at {url})")
