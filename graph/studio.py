"""Entry point for LangGraph Studio and `langgraph dev` (langgraph.json): the graph without our saver.

`langgraph dev` brings its own checkpointer and calls the factory for every run and for the graph and
schema pages, on its event loop, which refuses blocking calls: everything that reads files or waits
(settings, the embedded Redis, the CSV history) runs once, in a worker thread, and the services (market
data, signals, paper broker on Redis) are reused by every later call.

Studio gets its own corner of Redis: the key prefix `{redis.prefix}studio:`, so its paper account,
alerts, audit trail and replay clock are not the web page's. Without REDIS_URL the embedded Redis Stack
is started here when nothing answers on its port (and stopped when `langgraph dev` exits). The model is
ChatOllama from settings (LLM__MODEL, LLM__BASE_URL); slash commands work without it.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from config import Settings, load_settings
from graph.builder import build_graph
from graph.model.client import build_chat_model
from tools.redis_clients import async_client
from tools.services import Services, build_services

if TYPE_CHECKING:
    from tools.redis_embedded import EmbeddedRedis

STUDIO_PREFIX = "studio:"
log = logging.getLogger(__name__)

_services: Services | None = None
_model: BaseChatModel | None = None
_lock = asyncio.Lock()


def studio_settings() -> Settings:
    """The usual settings (env vars, COPILOT_CONFIG) under Studio's own key prefix."""
    settings = load_settings()
    prefix = f"{settings.redis.prefix}{STUDIO_PREFIX}"
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"prefix": prefix})})


def embedded_redis(settings: Settings) -> EmbeddedRedis | None:
    """The embedded Redis Stack of these settings (None when REDIS_URL names a server)."""
    if not settings.embedded_redis:
        return None
    from tools.redis_embedded import EmbeddedRedis

    return EmbeddedRedis(
        port=settings.redis.port, data_dir=Path(settings.redis.data_dir), bind=settings.redis.host
    )


def ensure_redis(settings: Settings) -> None:
    """A bare `langgraph dev` works too: start the embedded Redis when nothing answers on its port.

    It is left running (`copilot redis stop` stops it): `langgraph dev` serves from a reloader's child
    process, which restarts on every code change and leaves without running exit hooks. `make studio`
    (main() below) starts it first and stops it when `langgraph dev` ends."""
    server = embedded_redis(settings)
    if server is not None and server.start():
        log.warning("started the embedded Redis Stack at %s; `copilot redis stop` stops it", server.url)


def _prepare() -> tuple[Settings, BaseChatModel]:
    """The blocking part of the set-up: settings files, the Redis process, the model's HTTP clients (TLS)."""
    settings = studio_settings()
    ensure_redis(settings)
    return settings, build_chat_model(settings)


async def _shared() -> tuple[Services, BaseChatModel]:
    global _services, _model
    async with _lock:  # the first calls arrive together (graph page, schemas, a run)
        if _services is None or _model is None:
            settings, model = await asyncio.to_thread(_prepare)
            redis = async_client(settings.effective_redis_url)
            _services, _model = await build_services(settings, redis), model
        return _services, _model


async def make_graph(config: RunnableConfig) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Graph factory named in langgraph.json; the runtime context (tools.context.Context) is set per run."""
    services, model = await _shared()
    return build_graph(services, services.settings, model).compile(name="copilot")


def main(argv: list[str] | None = None) -> int:
    """`make studio`: the embedded Redis (unless REDIS_URL), `langgraph dev` on langgraph.json with `argv`,
    then the Redis stopped again if this started it (as every `copilot` command does)."""
    server = embedded_redis(load_settings())
    started = server.start() if server is not None else False
    langgraph = Path(sys.executable).with_name("langgraph")  # the venv's, beside its python
    args = [str(langgraph), "dev", "--config", "langgraph.json", *(sys.argv[1:] if argv is None else argv)]
    proc = subprocess.Popen(args)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # Ctrl-C reached langgraph dev too: let it shut down first
                continue
    finally:
        if server is not None and started:
            server.stop()
            print(f"stopped the embedded Redis Stack at {server.url}")


if __name__ == "__main__":
    raise SystemExit(main())
