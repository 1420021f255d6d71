"""What the benches share: the copilot's services or its app on a private embedded Redis Stack, and the
start/stop of a server process.

The copilot's own modules are imported where they are used: bench/bench_stack.py's baseline server process
and bench/llama_server.py's model server import this module and load none of the copilot."""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis

from server.in_thread import free_port, serve_in_thread
from tools.redis_embedded import EmbeddedRedis

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from config import Settings
    from tools.protocols import Clock
    from tools.services import Services

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@asynccontextmanager
async def private_services(
    clock: Clock, **overrides: Any
) -> AsyncIterator[tuple[Settings, aioredis.Redis, Services]]:
    """Settings on a fresh embedded Redis Stack (its data and the market's in a temporary folder, the shared
    history as the fallback; `overrides`: more settings sections, e.g. llm=...), a client on it and the
    copilot's services on `clock`; all gone afterwards."""
    from config import load_settings
    from tools.services import build_services

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(port=free_port(), data_dir=Path(tmp))
        server.start()
        try:
            settings = load_settings(
                redis_url=server.url,
                data_dir=str(Path(tmp) / "data"),
                fallback_data_dir=str(SHARED_DATA),
                logging={"file": None},
                **overrides,
            )
            redis = aioredis.from_url(server.url, decode_responses=True)
            services = await build_services(settings, redis, clock)
            try:
                yield settings, redis, services
            finally:
                await services.aclose()
                await redis.aclose()
        finally:
            server.stop()


@contextmanager
def private_app(chat_model: BaseChatModel, **overrides: Any) -> Iterator[str]:
    """The real app under uvicorn in this process, answered by `chat_model`, on a fresh embedded Redis Stack
    (a key prefix of its own, the shared history as the fallback; `overrides`: more settings sections, e.g.
    risk=...); yields its base URL, all gone afterwards."""
    from config import load_settings
    from server.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(port=free_port(), data_dir=Path(tmp) / "redis")
        redis.start()
        try:
            settings = load_settings(
                redis_url=redis.url,
                redis={"prefix": f"bench{uuid.uuid4().hex[:6]}:"},
                data_dir=str(Path(tmp) / "data"),
                fallback_data_dir=str(SHARED_DATA),
                logging={"file": None},
                **overrides,
            )
            with serve_in_thread(create_app(settings, chat_model=chat_model), startup_seconds=30) as url:
                yield url
        finally:
            redis.stop()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, path: str, timeout: float = 90) -> None:
    """Poll `url + path` until it answers (any status below 500); raise with the end of the process's `log`
    if the process exits first or does not answer within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + path, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate a server process; kill it if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
