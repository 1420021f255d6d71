"""Shared fixtures: one real embedded Redis Stack per test session, the shared market data, settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from config import Settings, load_settings
from graph.copilot import Copilot
from graph.model.fake import ScriptedChatModel
from server.in_thread import free_port
from tests.support import ROOT
from tests.support.api_support import ApiServer, Script, api_settings, running_app
from tests.support.broker_support import World, world
from tests.support.graph import GOOD, CopilotFactory, WallClock, shared_market
from tests.support.llama_server import LlamaServers
from tests.support.ollama import MODELS
from tests.support.ollama_double import OllamaDouble
from tests.support.serving import serve_app
from tools.broker.factory import build_broker
from tools.broker.paper import PaperBroker
from tools.market.clock import ManualClock
from tools.market.specs import load_specs
from tools.redis_embedded import EmbeddedRedis
from tools.services import Services
from tools.signals.factory import build_signals

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` holds the real XAUUSD/EURUSD history; the suite needs it."""
    if not (SHARED_DATA / "XAUUSD_M1.csv.gz").is_file():
        pytest.fail(f"real market data not found at {SHARED_DATA} (expected XAUUSD_M1.csv.gz)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def key_prefix() -> str:
    """A fresh key prefix per test, so tests sharing the server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def settings(redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path) -> Settings:
    return load_settings(
        redis_url=redis_url,
        redis={"prefix": key_prefix},
        data_dir=str(tmp_path / "data"),
        fallback_data_dir=str(shared_data),
        logging={"file": None},
    )


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


# --- live apps (tests/support/api_support.py) on the session's Redis and the real history, per module ---


@pytest.fixture(scope="module")
def serve_api(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """serve_api(name, script=None, **overrides) starts a real app on api_settings(**overrides) with a data
    dir of its own and returns its base URL; the module's apps stop when its last test is done."""
    with ExitStack() as apps:

        def start(name: str, script: Script | None = None, **overrides: Any) -> str:
            settings = api_settings(redis_server.url, shared_data, tmp_path_factory.mktemp(name), **overrides)
            return apps.enter_context(running_app(settings, script))

        yield start


# --- the Ollama double (tests/support/ollama_double.py) with tests/support/ollama.py's models, per module ---


@pytest.fixture(scope="module")
def ollama_double() -> OllamaDouble:
    return OllamaDouble(models=dict(MODELS))


@pytest.fixture(scope="module")
def ollama_url(ollama_double: OllamaDouble) -> Iterator[str]:
    with serve_app(ollama_double.app()) as url:
        yield url


# --- the real model: llama-cpp-python's OpenAI server on SmolLM2-135M (tests/support/llama_server.py) ---


@pytest.fixture(scope="session")
def llama_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServers]:
    """llama_servers.get(chat_format, n_ctx) starts (once per session) and returns a real model server."""
    servers = LlamaServers(tmp_path_factory.mktemp("llama"))
    yield servers
    servers.stop()


# --- broker fixtures: the shared XAUUSD history, its clock at T0 (tests/support/broker_support.py) ---


@pytest.fixture
def market_world(shared_data: Path) -> World:
    return world(shared_data)


@pytest.fixture
def broker(redis_client: aioredis.Redis, market_world: World, settings: Settings) -> PaperBroker:
    clock, market, specs = market_world
    return PaperBroker(redis_client, market, clock, specs, settings)


# --- graph fixtures: real services on the shared XAUUSD history, a manual market clock, a scripted model ----


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(GOOD)


@pytest.fixture
def wall() -> WallClock:
    return WallClock()


@pytest.fixture
async def services(
    settings: Settings, redis_client: aioredis.Redis, clock: ManualClock
) -> AsyncIterator[Services]:
    """build_services' wiring (CSV market, technical engine, paper broker) over the shared loaded history."""
    specs = load_specs(settings)
    market = shared_market(settings, clock)
    signals = build_signals(settings, market, clock, specs)
    broker, alerts = build_broker(settings, redis_client, market, clock, specs)
    closers: list[object] = [s for s in (signals, broker, alerts) if hasattr(s, "aclose")]
    built = Services(settings, redis_client, specs, clock, market, signals, broker, alerts, closers)
    yield built
    await built.aclose()


@pytest.fixture
def make_copilot(settings: Settings, services: Services, wall: WallClock) -> CopilotFactory:
    """Open a Copilot over the test services with a scripted model; `risk=` overrides risk settings."""

    @asynccontextmanager
    async def factory(replies: list[Any] | None = None, **overrides: Any) -> AsyncIterator[Copilot]:
        tuned = settings
        if overrides:
            data = settings.model_dump()
            for section, values in overrides.items():
                data[section] = {**data[section], **values}
            tuned = load_settings(**data)
            services.settings = tuned
        model = ScriptedChatModel(replies=replies or ["ok"])
        async with Copilot.open(tuned, services=services, chat_model=model, now=wall) as copilot:
            yield copilot

    return factory
