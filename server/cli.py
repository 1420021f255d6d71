"""The `copilot` command line: embedded Redis, data import, the services, the server and the chat."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import ConfigError, Settings, load_settings
from server.redis_embedded import EmbeddedRedis, RedisStartError


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    return EmbeddedRedis(
        port=settings.redis.port, data_dir=Path(settings.redis.data_dir), bind=settings.redis.host
    )


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="copilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("redis", help="start, stop or check the embedded Redis Stack")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_redis)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        return int(args.func(settings, args) or 0)
    except (ConfigError, RedisStartError) as exc:
        print(f"copilot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
