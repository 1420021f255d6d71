"""The FastAPI app: `create_app(settings, copilot=None)`; the lifespan opens one Copilot per process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from langchain_core.language_models import BaseChatModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from config import Settings
from graph.copilot import Copilot, NoPendingApproval
from graph.recovery.runs import sweep
from graph.threads import InvalidId
from server.api.docs import install_docs
from server.api.responses import validation_detail
from server.api.routes import chat, events, health, market, portfolio, sessions
from server.api.routes.preferences import preferences_router
from server.api.runs import NOTHING_PENDING, RunRegistry
from server.csp import HEADERS, page_policy
from server.metrics import Metrics
from server.middleware import BodyLimit, CatchAll, RequestMetrics, SecurityHeaders
from server.ticker import run_ticker
from tools.leader import Leader
from tools.locks import Leases
from tools.protocols import ServiceError
from tools.redis_clients import async_client

log = logging.getLogger("copilot.server")
DRAIN_SECONDS = 5.0
REDIS_RETRY_AFTER_SECONDS = 5
REDIS_DOWN = (
    "Redis (where sessions, approvals and the paper ledger live) is unavailable; nothing was changed. "
    "Retry in a few seconds."
)
WEB_DIR = Path(__file__).resolve().parent / "web"


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _lifespan(settings: Settings, given: Copilot | None, chat_model: BaseChatModel | None) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Opened here, on the server's event loop, because its Redis connections belong to that loop.
            copilot = given
            if copilot is None:
                copilot = await stack.enter_async_context(
                    Copilot.open(settings, chat_model=chat_model, clock_owner=True)
                )
            redis = async_client(settings.effective_redis_url)
            stack.push_async_callback(redis.aclose)
            app.state.redis = redis
            locks = Leases(
                redis,
                settings.redis.prefix,
                settings.server.run_lease_seconds,
                wait=settings.server.busy_policy == "wait",
                wait_seconds=settings.server.busy_wait_seconds,
            )
            runs = RunRegistry(locks, app.state.metrics)
            # One ticker per deployment: the worker holding this lease scans the accounts, the others wait.
            ticker = Leader(
                redis, f"{settings.redis.prefix}leader:ticker", settings.scale.leader_lease_seconds, "ticker"
            )
            app.state.ticker = ticker
            app.state.locks, app.state.runs, app.state.copilot = locks, runs, copilot
            tasks = [
                asyncio.create_task(run_ticker(copilot.services, settings.broker.tick_seconds, ticker)),
                asyncio.create_task(_sweep(copilot, locks)),
            ]
            if settings.telegram.enabled:  # the poller runs on whichever worker holds its lease
                from server.telegram import run_telegram

                tasks.append(asyncio.create_task(run_telegram(copilot, settings, redis, locks)))
            # The real ChatOllama: load the model in the background (an OpenAI server loads it at its start).
            if given is None and chat_model is None and settings.llm.provider == "ollama":
                tasks.append(asyncio.create_task(_warm_up(copilot.settings)))  # the model it chats with
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=DRAIN_SECONDS)  # the bot releases its poller lease
                if (hub := getattr(app.state, "notice_hub", None)) is not None:
                    await hub.aclose()  # the live pages' shared notice reader (server/api/routes/events.py)
                # Runs in flight get a moment to reach their checkpoint; what is cut is reconciled later.
                await runs.drain(DRAIN_SECONDS)
                app.state.copilot = None

    return lifespan


async def _sweep(copilot: Copilot, locks: Leases) -> None:
    try:
        done = await sweep(copilot, locks)
    except Exception:  # Redis away at start: the next access to each session reconciles it instead
        log.exception("start sweep of interrupted runs failed")
        return
    log.info("start sweep: %d interrupted run(s) completed", done)


async def _warm_up(settings: Settings) -> None:
    from graph.model.ollama_server import warm_up

    log.info("model warm-up: %s", await warm_up(settings))


def _allowed_methods(app: FastAPI, path: str) -> str | None:
    """Every method the document declares at this path (Starlette's 405 names only the first route's), or
    None for a path the document does not describe."""
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods = {method.upper() for method in operations}
            return ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(InvalidId)
    async def invalid_id(request: Request, exc: InvalidId) -> JSONResponse:
        detail = validation_detail([{"loc": ("path", "session_id"), "msg": str(exc), "type": "value_error"}])
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        allowed = _allowed_methods(app, request.url.path) if exc.status_code == 405 else None
        if allowed is not None:
            exc.headers = {**(exc.headers or {}), "Allow": allowed}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unavailable on %s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)}
        return JSONResponse({"detail": REDIS_DOWN}, status_code=503, headers=headers)

    @app.exception_handler(NoPendingApproval)
    async def nothing_pending(request: Request, exc: NoPendingApproval) -> JSONResponse:
        return JSONResponse({"detail": NOTHING_PENDING}, status_code=409)  # decided elsewhere meanwhile

    @app.exception_handler(ServiceError)
    async def service_failed(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=502)


def create_app(
    settings: Settings, copilot: Copilot | None = None, *, chat_model: BaseChatModel | None = None
) -> FastAPI:
    """The whole HTTP surface. Without `copilot`, one is opened from settings at start-up (with `chat_model`
    instead of ChatOllama when given: tests and demos pass a scripted model)."""
    app = FastAPI(
        title="Trading Copilot",
        description="Chat with a local-LLM trading copilot; every trade waits for your approval.",
        version="0.1.0",
        docs_url=None,  # served by install_docs from local assets (no CDN)
        redoc_url=None,
        lifespan=_lifespan(settings, copilot, chat_model),
    )
    metrics = Metrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.copilot = None
    for router in (
        chat.router,
        sessions.router,
        portfolio.router,
        market.router,
        events.router,
        health.router,
    ):
        app.include_router(router)
    app.include_router(preferences_router(settings))
    _install_error_handlers(app)
    install_docs(app)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    # Each add wraps the previous ones: metrics outermost, so they count BodyLimit's 413s and CatchAll's 500s.
    app.add_middleware(CatchAll)
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(SecurityHeaders, headers={"Content-Security-Policy": page_policy(), **HEADERS})
    return app


def app_from_settings() -> FastAPI:
    """Factory for `uvicorn --factory` / `copilot serve --workers N`: settings from env and YAML."""
    from config import load_settings
    from server.logs import setup_logging

    settings = load_settings()
    setup_logging(settings)
    return create_app(settings)
