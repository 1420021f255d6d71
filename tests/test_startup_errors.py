"""Every bad setting stops `copilot serve` (the real CLI, a subprocess) with exit code 2 and ONE stderr line
naming the key, before any server, market data or model is touched; a valid nested override is accepted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
import redis

from config import load_settings
from server.in_thread import free_port
from tests.support import ROOT
from tests.support.serving import wait_healthy
from tools.redis_embedded import EmbeddedRedis, ensure_libssl, stack_root

EURJPY = (
    '{"digits": 3, "pip_size": 0.01, "contract_size": 100000, "min_lot": 0.01, "max_lot": 10, '
    '"lot_step": 0.01, "quote_currency": "JPY"}'
)
CASES: dict[str, tuple[dict[str, str], str]] = {
    # id: (environment, text the one line must contain: the key, and for some what is allowed)
    "api keys not JSON": (
        {"SERVER__API_KEYS": "alice-key:alice"},
        "server.api_keys: Input should be a valid dictionary",
    ),
    "api keys a list": ({"SERVER__API_KEYS": '["alice-key"]'}, "server.api_keys"),
    "empty api key": (
        {"SERVER__API_KEYS": '{"": "alice"}'},
        "server.api_keys: the key of user 'alice' (key #1) is empty",
    ),
    "api key with a space": (
        {"SERVER__API_KEYS": '{"sec ret-77": "alice"}'},
        "server.api_keys: the key of user 'alice'",
    ),
    "user id with colon": ({"SERVER__API_KEYS": '{"k-1": "al:ice"}'}, "server.api_keys: user id 'al:ice'"),
    "empty user id": ({"SERVER__API_KEYS": '{"k-1": ""}'}, "server.api_keys: user id ''"),
    "user id too long": ({"SERVER__API_KEYS": '{"k-1": "' + "u" * 129 + '"}'}, "server.api_keys: user id"),
    "metrics key is a user key": (
        {"SERVER__API_KEYS": '{"secret-88": "alice"}', "SERVER__METRICS_KEY": "secret-88"},
        "server.metrics_key: must differ",
    ),
    "telegram chat of no user": (
        {"SERVER__API_KEYS": '{"k-1": "alice"}', "TELEGRAM__ALLOWED_CHATS": '{"42": "mallory"}'},
        "telegram.allowed_chats: chat 42 maps to 'mallory', not a user of server.api_keys",
    ),
    "telegram chats not JSON": (
        {"TELEGRAM__ALLOWED_CHATS": "42:alice"},
        "telegram.allowed_chats: Input should be a valid dictionary",
    ),
    "telegram chat id not a number": (
        {"TELEGRAM__ALLOWED_CHATS": '{"alice": "local"}'},
        "telegram.allowed_chats.alice",
    ),
    "telegram api url": ({"TELEGRAM__API_BASE_URL": "api.telegram.org"}, "telegram.api_base_url"),
    "allowed symbols not JSON": (
        {"RISK__ALLOWED_SYMBOLS": "XAUUSD"},
        "risk.allowed_symbols: Input should be a valid list",
    ),
    "allowed symbol unknown": (
        {"RISK__ALLOWED_SYMBOLS": '["FOOBAR"]'},
        "risk.allowed_symbols: 'FOOBAR' is not in symbols",
    ),
    "allowed symbols empty": (
        {"RISK__ALLOWED_SYMBOLS": "[]"},
        "risk.allowed_symbols: list at least one symbol",
    ),
    "min_risk_reward inf": (
        {"RISK__MIN_RISK_REWARD": "inf"},
        "risk.min_risk_reward: Input should be a finite number",
    ),
    "max_lots_per_symbol inf": (
        {"RISK__MAX_LOTS_PER_SYMBOL": "inf"},
        "risk.max_lots_per_symbol: Input should be a finite",
    ),
    "max_price_drift_pct nan": (
        {"RISK__MAX_PRICE_DRIFT_PCT": "nan"},
        "risk.max_price_drift_pct: Input should be a finite",
    ),
    "leverage inf": ({"BROKER__LEVERAGE": "inf"}, "broker.leverage: Input should be a finite number"),
    "spread inf": (
        {"SYMBOLS__XAUUSD__SPREAD_PIPS": "Infinity"},
        "symbols.XAUUSD.spread_pips: Input should be a finite",
    ),
    "min_confidence above 1": (
        {"RISK__MIN_CONFIDENCE": "7"},
        "risk.min_confidence: Input should be less than or equal to 1",
    ),
    "risk per trade 0": (
        {"RISK__MAX_RISK_PER_TRADE_PCT": "0"},
        "risk.max_risk_per_trade_pct: Input should be greater than 0",
    ),
    "max positions not int": (
        {"RISK__MAX_OPEN_POSITIONS": "two"},
        "risk.max_open_positions: Input should be a valid integer",
    ),
    "signal timeframe": ({"RISK__SIGNAL_TIMEFRAME": "2h"}, "risk.signal_timeframe: Input should be"),
    "bool not bool": (
        {"RISK__BLOCK_AGAINST_SIGNAL": "maybe"},
        "risk.block_against_signal: Input should be a valid boolean",
    ),
    "unknown risk key": (
        {"RISK__MAX_RISK_PCT": "5"},
        "risk.max_risk_pct: unknown key; known: allowed_symbols",
    ),
    "tool mode": ({"LLM__TOOL_MODE": "magic"}, "llm.tool_mode: Input should be 'auto', 'native' or 'json'"),
    "num_ctx too small": (
        {"LLM__NUM_CTX": "100"},
        "llm.num_ctx: Input should be greater than or equal to 512",
    ),
    "request timeout negative": (
        {"LLM__REQUEST_TIMEOUT": "-1"},
        "llm.request_timeout: Input should be greater than 0",
    ),
    "temperature": (
        {"INFERENCE__TEMPERATURE": "3"},
        "inference.temperature: Input should be less than or equal to 2",
    ),
    "max_history 0": (
        {"CONTEXT__MAX_HISTORY": "0"},
        "context.max_history: Input should be greater than or equal to 1",
    ),
    "redis port": ({"REDIS__PORT": "99999"}, "redis.port: Input should be less than or equal to 65535"),
    "tools timeout inf": ({"TOOLS__TIMEOUT": "inf"}, "tools.timeout: Input should be a finite number"),
    "log level": ({"LOGGING__LEVEL": "LOUD"}, "logging.level: Input should be"),
    "account currency": (
        {"BROKER__ACCOUNT_CURRENCY": "EUR"},
        "broker.account_currency: Input should be 'USD'",
    ),
    "replay speed 0": ({"REPLAY__SPEED": "0"}, "replay.speed: Input should be greater than 0"),
    "replay start not a date": (
        {"REPLAY__START": "yesterday"},
        "replay.start: expected 'auto' or an ISO UTC datetime",
    ),
    "server port": ({"SERVER__PORT": "70000"}, "server.port: Input should be less than or equal to 65535"),
    "busy policy": (
        {"SERVER__BUSY_POLICY": "queue"},
        "server.busy_policy: Input should be 'reject' or 'wait'",
    ),
    "run lease too long": (
        {"SERVER__RUN_LEASE_SECONDS": "600"},
        "server.run_lease_seconds: Input should be less than",
    ),
    "service url": (
        {"SERVICES__TRADING_URL": "trading:8000"},
        "services.trading_url: expected empty (embedded) or an http",
    ),
    "symbol field negative": (
        {"SYMBOLS__XAUUSD__SPREAD_PIPS": "-1"},
        "symbols.XAUUSD.spread_pips: Input should be greater",
    ),
    "symbol lots reversed": (
        {"SYMBOLS__XAUUSD__MIN_LOT": "20"},
        "symbols.XAUUSD: min_lot must not exceed max_lot",
    ),
    "symbol unknown field": (
        {"SYMBOLS__XAUUSD__SPREAD": "1"},
        "symbols.XAUUSD.spread: unknown key; known: contract_size",
    ),
    "new symbol incomplete": ({"SYMBOLS__BTCUSD__DIGITS": "2"}, "symbols.BTCUSD.pip_size: required"),
    "cross pair": (
        {"SYMBOLS__EURJPY": EURJPY, "RISK__ALLOWED_SYMBOLS": '["EURJPY"]'},
        "symbols.EURJPY.quote_currency: JPY is supported only for USD-based pairs",
    ),
    "redis url scheme": (
        {"REDIS_URL": "localhost-redis"},
        "redis_url: Redis URL must specify one of the following schemes",
    ),
    "redis closed port": (
        {"REDIS_URL": "redis://127.0.0.1:{closed_port}/0"},
        "REDIS_URL: no Redis answers at",
    ),
    "redis without modules": ({"REDIS_URL": "{plain_redis}"}, "REDIS_URL: the Redis at"),
    "yaml malformed": (
        {"COPILOT_CONFIG": "{tmp}/malformed.yaml"},
        "malformed.yaml): not valid YAML: expected ',' or ']'",
    ),
    "yaml a list": ({"COPILOT_CONFIG": "{tmp}/list.yaml"}, "list.yaml): expected a mapping of sections"),
    "yaml missing": ({"COPILOT_CONFIG": "{tmp}/missing.yaml"}, "COPILOT_CONFIG: file not found"),
    "yaml unknown key": ({"COPILOT_CONFIG": "{tmp}/unknown.yaml"}, "llm.modle: unknown key; known:"),
    "yaml wrong type": (
        {"COPILOT_CONFIG": "{tmp}/wrong.yaml"},
        "risk.max_open_positions: Input should be a valid integer",
    ),
    "server host unknown": ({"SERVER__HOST": "no-such-host.invalid"}, "server.host: cannot listen on"),
    "port in use": ({"SERVER__PORT": "{busy_port}"}, "server.port: cannot listen on"),
    "log file unwritable": ({"LOGGING__FILE": "/proc/no-such-dir/copilot.log"}, "logging.file: cannot write"),
    "no market data": ({"FALLBACK_DATA_DIR": "{tmp}/empty"}, "no market data: neither data_dir"),
}
YAML_FILES = {
    "malformed.yaml": "risk:\n  min_risk_reward: [1\nllm: x\n",
    "list.yaml": "- llm\n- risk\n",
    "unknown.yaml": "llm:\n  modle: llama3\n",
    "wrong.yaml": "risk:\n  max_open_positions: three\n",
}


class Outcome(NamedTuple):
    code: int
    stderr: str


def serve(env: dict[str, str]) -> Outcome:
    """`copilot serve` on any free port (or on SERVER__PORT when the case sets it)."""
    args = [sys.executable, "-m", "server.cli", "serve", *([] if "SERVER__PORT" in env else ["--port", "0"])]
    try:
        proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:  # it started a server: the setting was accepted
        return Outcome(-1, f"still running after {exc.timeout} s: {exc.stderr!r}")
    return Outcome(proc.returncode, proc.stderr)


@pytest.fixture(scope="module")
def plain_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Redis Stack's own redis-server started without its modules: a Redis the copilot cannot use."""
    port, lib = free_port(), ensure_libssl()
    env = {**os.environ, **({"LD_LIBRARY_PATH": str(lib)} if lib else {})}
    args = [str(stack_root() / "bin" / "redis-server"), "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("plain-redis"))]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port, socket_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "plain redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def outcomes(
    redis_server: object, plain_redis: str, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """All cases run at once (one `copilot serve` process each, none gets as far as starting a server)."""
    tmp = tmp_path_factory.mktemp("startup")
    (tmp / "empty").mkdir()
    for name, text in YAML_FILES.items():
        (tmp / name).write_text(text)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "REDIS", "SERVER__", "RISK__"))
    }
    base |= {
        "REDIS_URL": redis_server.url,  # type: ignore[attr-defined]
        "DATA_DIR": str(tmp / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
    }
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fill = {"tmp": str(tmp), "closed_port": str(free_port()), "plain_redis": plain_redis,
                "busy_port": str(busy.getsockname()[1])}  # fmt: skip
        envs = {
            name: base | {k: _filled(v, fill) for k, v in env.items()} for name, (env, _) in CASES.items()
        }
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(envs, pool.map(serve, envs.values()), strict=True))
    yield results


def _filled(value: str, places: dict[str, str]) -> str:
    for name, text in places.items():
        value = value.replace("{" + name + "}", text)
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_setting_is_one_line_naming_the_key_and_exit_code_2(
    outcomes: dict[str, Outcome], case: str
) -> None:
    code, stderr = outcomes[case]
    assert code == 2, stderr[-3000:]
    assert len(stderr.splitlines()) == 1, stderr[-3000:]
    assert CASES[case][1] in stderr, stderr
    assert "Traceback" not in stderr


def test_secrets_are_never_repeated_in_the_error(outcomes: dict[str, Outcome]) -> None:
    for case, secret in [("api keys not JSON", "alice-key"), ("api key with a space", "sec ret-77"),
                         ("metrics key is a user key", "secret-88")]:  # fmt: skip
        line = outcomes[case].stderr
        assert outcomes[case].code == 2 and secret not in line, line


def test_one_field_of_a_symbol_is_overridden_by_env_and_deep_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYMBOLS__XAUUSD__SPREAD_PIPS", "3")
    xau = load_settings().symbols["XAUUSD"]
    assert xau.spread_pips == 3 and xau.pip_size == 0.1 and xau.contract_size == 100  # the rest from YAML
    # a user YAML naming the symbol in lower case merges too, and the env still wins over it
    user = tmp_path / "copilot.yaml"
    user.write_text("symbols:\n  xauusd: {spread_pips: 4, max_lot: 5}\n")
    monkeypatch.setenv("COPILOT_CONFIG", str(user))
    xau = load_settings().symbols["XAUUSD"]
    assert (xau.spread_pips, xau.max_lot, xau.digits) == (3, 5, 2)
    assert list(load_settings().symbols) == ["XAUUSD", "EURUSD", "GBPUSD", "USDJPY"]
    monkeypatch.setenv("RISK__ALLOWED_SYMBOLS", '["xauusd", "eurusd"]')  # names them as symbols are keyed
    assert load_settings().risk.allowed_symbols == ["XAUUSD", "EURUSD"]


def test_the_cli_accepts_the_nested_override_and_goes_on_to_redis(shared_data: Path) -> None:
    """SYMBOLS__XAUUSD__SPREAD_PIPS=3 passes the settings: the first thing refused is the closed Redis."""
    env = {
        **os.environ,
        "SYMBOLS__XAUUSD__SPREAD_PIPS": "3",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    code, stderr = serve(env)
    assert code == 2 and stderr.startswith("copilot: REDIS_URL: no Redis answers"), stderr


def test_sigterm_stops_serve_and_the_embedded_redis_it_started(shared_data: Path, tmp_path: Path) -> None:
    """What a service manager sends: the server shuts down cleanly and takes its embedded Redis with it."""
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "REDIS"))}
    env |= {"REDIS__PORT": str(redis_port), "REDIS__DATA_DIR": str(tmp_path / "redis"), "LOGGING__FILE": "",
            "DATA_DIR": str(tmp_path / "data"), "FALLBACK_DATA_DIR": str(shared_data),
            "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    log = tmp_path / "serve.log"
    args = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        assert redis.Redis(port=redis_port).ping()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=redis_port, socket_timeout=1).ping()
    finally:
        if proc.poll() is None:
            proc.kill()
        EmbeddedRedis(port=redis_port, data_dir=tmp_path / "redis").stop()  # left running only on failure


COMMANDS = [
    ["signal", "XAUUSD"], ["analyze", "XAUUSD"], ["portfolio"], ["clock", "show"], ["demo"],
    ["chat", "--local"], ["eval-model", "--only", "signal"], ["data", "list"], ["redis", "status"],
]  # fmt: skip
USES_REDIS = COMMANDS[:7]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_setting_in_one_line(command: list[str], shared_data: Path) -> None:
    env = {**os.environ, "RISK__MAX_LOTS_PER_SYMBOL": "inf", "FALLBACK_DATA_DIR": str(shared_data)}
    proc = subprocess.run([sys.executable, "-m", "server.cli", *command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "risk.max_lots_per_symbol: Input should be a finite number" in proc.stderr


@pytest.mark.parametrize("command", USES_REDIS, ids=" ".join)
def test_every_command_using_redis_refuses_a_redis_url_that_does_not_answer(
    command: list[str], shared_data: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "FALLBACK_DATA_DIR": str(shared_data),
    }
    proc = subprocess.run([sys.executable, "-m", "server.cli", *command], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("copilot: REDIS_URL: no Redis answers at"), proc.stderr
