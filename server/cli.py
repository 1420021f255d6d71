"""The `copilot` command line: embedded Redis, data import, the services, the server and the chat."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config import ConfigError, Settings, load_settings
from config.values import TIMEFRAMES, ReplayStartError
from server.startup_checks import StartupError, check_log_file, check_redis, listen_port
from tools.redis_embedded import EmbeddedRedis, RedisStartError


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(
        port=settings.redis.port, data_dir=Path(settings.redis.data_dir), bind=settings.redis.host
    )


@contextmanager
def redis_for_command(settings: Settings) -> Iterator[None]:
    """The embedded Redis for one command (unless REDIS_URL): started if needed, and then stopped again,
    so a command leaves it as it found it (its data is on disk: AOF). With REDIS_URL, that one must answer."""
    check_redis(settings)
    server = embedded_redis(settings) if settings.embedded_redis else None
    started = server.start() if server is not None else False
    try:
        yield
    finally:
        if server is not None and started:
            server.stop()


def cmd_redis(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.embedded_redis:
        print(f"REDIS_URL is set ({settings.redis_url}); the embedded Redis is not used.")
        return 0
    server = embedded_redis(settings)
    if args.action == "start":
        started = server.start()
        print(("started" if started else "already running") + f": Redis Stack at {server.url}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running (no pid file in " + str(server.data_dir) + ")")
    else:
        if server.ping():
            print(f"running at {server.url}; modules: {', '.join(server.modules())}")
        else:
            print(f"not running (nothing answers at {server.url})")
            return 3
    return 0


def cmd_data(settings: Settings, args: argparse.Namespace) -> int:
    """Import a user's OHLCV CSV into data_dir, or list the history the copilot would load."""
    from tools.market.csv_import import import_csv, list_data
    from tools.market.specs import load_specs
    from tools.protocols import ServiceError

    try:
        if args.action == "import":
            if not args.file or not args.symbol:
                print("copilot data import: FILE and --symbol are required", file=sys.stderr)
                return 2
            report = import_csv(
                Path(args.file), args.symbol, Path(settings.data_dir), not args.quiet, load_specs(settings)
            )
            print(report.summary())
        else:
            for line in list_data(settings):
                print(line)
    except ServiceError as exc:
        print(f"copilot data: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from server.cli_services import ServiceError, check_market, release_clock, server_url
    from tools.market.clock import SERVER_URL_ENV

    host = args.host or settings.server.host
    port = listen_port(host, settings.server.port if args.port is None else args.port)
    check_log_file(settings)
    check_redis(settings)
    try:
        check_market(settings)
    except ServiceError as exc:
        print(f"copilot serve: {exc}", file=sys.stderr)
        return 2
    server = embedded_redis(settings) if settings.embedded_redis else None
    started = server.start() if server is not None else False
    if server is not None:
        print(f"Redis Stack at {server.url} ({'started' if started else 'already running'})")
    print(f"Trading Copilot on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    url = server_url(settings, host, port)
    os.environ[SERVER_URL_ENV] = url  # the workers' clock heartbeat names this server, for CLI commands
    # uvicorn re-raises a SIGTERM after its graceful shutdown: by default that kills this process before the
    # `finally` below, leaving the embedded Redis running. As Ctrl-C it ends uvicorn.run; the finally runs.
    signal.signal(signal.SIGTERM, _stop_as_ctrl_c)
    try:
        # A factory import string, so each of N workers builds its own app (and its own Copilot).
        uvicorn.run("server.app:app_from_settings", factory=True, host=host, port=port, workers=args.workers)
    finally:
        release_clock(settings, url)
        if server is not None and started:
            if args.keep_redis:
                print(f"Redis Stack left running at {server.url} (`copilot redis stop` stops it)")
            else:
                server.stop()
    return 0


def _stop_as_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_telegram(settings: Settings, args: argparse.Namespace) -> int:
    """The Telegram bot alone (no HTTP server): polls while it holds the poller lease, else stands by."""
    import asyncio

    from server.logs import setup_logging
    from server.telegram.standalone import run_standalone

    if not settings.telegram.enabled:
        print("copilot telegram: set TELEGRAM__BOT_TOKEN (from @BotFather) first", file=sys.stderr)
        return 2
    check_log_file(settings)
    setup_logging(settings)
    signal.signal(signal.SIGTERM, _stop_as_ctrl_c)
    with redis_for_command(settings):
        try:
            asyncio.run(run_standalone(settings))
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM: the lease was released on the way out
            print("copilot telegram: stopped", file=sys.stderr)
    return 0


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from server.chat_cli import ChatClient, new_session_id

    key = args.api_key or os.environ.get("COPILOT_API_KEY")
    session = args.session or new_session_id()
    if not args.local:
        url = (args.url or f"http://{settings.server.host}:{settings.server.port}").rstrip("/")
        return ChatClient(url=url, session_id=session, symbol=args.symbol, api_key=key).loop()
    # No server running: the same app in this process, on a private loopback port, for this chat only.
    from server.app import create_app
    from server.in_thread import serve_in_thread

    with redis_for_command(settings), serve_in_thread(create_app(settings)) as url:
        return ChatClient(url=url, session_id=session, symbol=args.symbol, api_key=key).loop()


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from graph.demo import run_demo

    with redis_for_command(settings):
        return asyncio.run(run_demo(settings, settings.effective_redis_url))


def cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    from server.cli_services import ServiceError, run_service_command

    try:
        with redis_for_command(settings):
            print(run_service_command(settings, args))
    except ServiceError as exc:
        print(f"copilot {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_eval_model(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from server.eval_model import Outcome, evaluate, load_cases, report, write_results

    cases = load_cases(Path(args.cases)) if args.cases else load_cases()
    if args.only:
        cases = [c for c in cases if c.category in args.only]
    if not cases:
        print("copilot eval-model: no cases selected", file=sys.stderr)
        return 2

    numbers = iter(range(1, len(cases) + 1))

    def progress(outcome: Outcome) -> None:  # long runs on a slow GPU: say where we are
        mark = "ok" if (outcome.refused if outcome.case.refuse else outcome.tool_ok) else "MISS"
        n = next(numbers)
        print(f"[{n}/{len(cases)}] {outcome.case.id}: {mark} ({outcome.total_s:.1f} s)", file=sys.stderr)

    check_redis(settings)  # before the first progress line, so a dead REDIS_URL is the only line
    from graph.model.ollama_model import with_copilot_model

    settings = asyncio.run(with_copilot_model(settings))  # the model chatted with: `<model>-copilot` if any
    llm = settings.llm
    print(f"Evaluating {llm.model} ({llm.provider}) at {llm.base_url} on {len(cases)} cases", file=sys.stderr)
    with redis_for_command(settings):
        outcomes = asyncio.run(evaluate(settings, cases, progress))
    print(report(outcomes, llm.model))
    if args.out:
        write_results(outcomes, settings, Path(args.out))
        print(f"Results written to {args.out}", file=sys.stderr)
    return 0


def cmd_model(settings: Settings, args: argparse.Namespace) -> int:
    """`install`: create `<llm.model>-copilot` on Ollama (graph.model.ollama_model); `status`: which model the
    copilot chats with."""
    import asyncio

    from graph.model.ollama_model import InstallError, copilot_model_name, copilot_model_present, install

    llm, name = settings.llm, copilot_model_name(settings.llm.model)
    if args.action == "status":
        present = asyncio.run(copilot_model_present(settings))
        state = {
            True: "present",
            False: "not created",
            None: f"unknown (Ollama at {llm.base_url} did not answer)",
        }
        used = name if present and llm.use_copilot_model else llm.model
        print(f"{name}: {state[present]}; llm.use_copilot_model: {str(llm.use_copilot_model).lower()}")
        print(f"the copilot chats with {used}")
        return 0 if present is not None else 3
    try:
        created = install(settings, lambda line: print(f"  {line}", flush=True))
    except InstallError as exc:
        print(f"copilot model install: {exc}", file=sys.stderr)
        return 2
    print(f"created {created} from {llm.model} (num_ctx {llm.num_ctx})")
    if llm.use_copilot_model:
        print("the copilot chats with it from its next start (llm.use_copilot_model: true)")
    else:
        print("llm.use_copilot_model is false: the copilot keeps chatting with " + llm.model)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("redis", help="start, stop or check the embedded Redis Stack")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_redis)
    p = sub.add_parser("data", help="import an OHLCV CSV (generic, MT4, MT5) or list the loaded history")
    p.add_argument("action", choices=["import", "list"])
    p.add_argument("file", nargs="?", help="CSV file to import (.csv or .csv.gz)")
    p.add_argument("--symbol", help="symbol of the file, e.g. XAUUSD")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("signal", help="the current signal for a symbol (technical engine or ML engine)")
    p.add_argument("symbol")
    p.add_argument("--timeframe", default="5m", choices=TIMEFRAMES)
    p.set_defaults(func=cmd_service)
    p = sub.add_parser("analyze", help="market analysis: trend, volatility, key levels, AMD phase, killzone")
    p.add_argument("symbol")
    p.set_defaults(func=cmd_service)
    p = sub.add_parser("portfolio", help="the paper (or platform) portfolio, from the running server if any")
    p.add_argument(
        "--account", help="account id, read from the ledger here (default: the server's answer, else 'paper')"
    )
    p.add_argument("--api-key", help="API key for the running server (or env COPILOT_API_KEY)")
    p.set_defaults(func=cmd_service)
    p = sub.add_parser("clock", help="show the replay clock, or re-anchor it from REPLAY__START")
    p.add_argument("action", choices=["show", "reset"])
    p.set_defaults(func=cmd_service)
    p = sub.add_parser(
        "eval-model", help="labelled prompts through the copilot and your model (any provider)"
    )
    p.add_argument("--cases", help="a YAML file of cases (default: the packaged prompts/eval_cases.yaml)")
    p.add_argument("--only", nargs="+", help="categories to run, e.g. signal trade refuse injection")
    p.add_argument("--out", help="also write every case and the summary as JSON, e.g. var/eval/model.json")
    p.set_defaults(func=cmd_eval_model)
    p = sub.add_parser(
        "model", help="create the copilot's Ollama model (<llm.model>-copilot), or show its state"
    )
    p.add_argument("action", choices=["install", "status"])
    p.set_defaults(func=cmd_model)
    p = sub.add_parser("demo", help="run signal -> proposal -> approval -> execution in-process on XAUUSD")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "serve", help="run the HTTP API and web chat (starts the embedded Redis unless REDIS_URL)"
    )
    p.add_argument("--host", help="bind address (default: server.host)")
    p.add_argument("--port", type=int, help="port (default: server.port, 3602; 0 = any free port)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes (state is in Redis, any count works)"
    )
    p.add_argument("--keep-redis", action="store_true", help="leave the embedded Redis running on exit")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "telegram", help="run the Telegram bot alone (`serve` runs it too when TELEGRAM__BOT_TOKEN is set)"
    )
    p.set_defaults(func=cmd_telegram)
    p = sub.add_parser("chat", help="chat with a running server from the terminal")
    p.add_argument("--url", help="server URL (default: http://server.host:server.port)")
    p.add_argument("--session", help="session id to continue (default: a new one)")
    p.add_argument("--symbol", help="the session's symbol (default: the session's own, XAUUSD for a new one)")
    p.add_argument("--api-key", help="API key (or env COPILOT_API_KEY)")
    p.add_argument("--local", action="store_true", help="no server needed: run the copilot in this process")
    p.set_defaults(func=cmd_chat)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return int(args.func(settings, args) or 0)
    except (ConfigError, RedisStartError, ReplayStartError, StartupError) as exc:
        print("copilot: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, whatever the message
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
