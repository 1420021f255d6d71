"""Servers of the tests: an ASGI app under uvicorn in a thread, a server process waited for until healthy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from server.in_thread import free_port, serve_in_thread
from tests.support import ROOT


def serve_app(app: object, port: int | None = None) -> AbstractContextManager[str]:
    """Run an ASGI app under a real uvicorn server in a thread; yields its base URL."""
    return serve_in_thread(app, port, startup_seconds=15)


def serve(port: int, env: dict[str, str], workers: int, log: Path) -> subprocess.Popen[bytes]:
    """Start `copilot serve` on `port` with `workers` processes, its output in `log` (in a session of its own,
    so a test can signal the whole group)."""
    args = [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def wait_answering(url: str, proc: subprocess.Popen[bytes], log: Path, name: str, seconds: int = 90) -> None:
    """Poll `url` until it answers 200; fail with the end of the process's `log` if the process exits first or
    does not answer within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} did not answer at {url}:\n{tail(log)}")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, name: str = "copilot serve") -> None:
    """Wait until the server at `url` answers /api/health (90 s at most)."""
    wait_answering(f"{url}/api/health", proc, log, name)


def tail(log: Path, chars: int = 3000) -> str:
    """The end of a process's log ("" before it exists)."""
    return log.read_text(errors="replace")[-chars:] if log.is_file() else ""


def process_env(redis_url: str, shared_data: Path, tmp: Path, **more: str) -> dict[str, str]:
    """A `copilot serve` process's environment in the tests: the session's Redis under a fresh key prefix,
    data under `tmp` with the real history as fallback, no log file, a model URL where nothing listens (slash
    commands only), then `more`."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "REDIS__PREFIX": f"t{uuid.uuid4().hex[:10]}:",
        "DATA_DIR": str(tmp / "data"),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
        "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",
        **more,
    }
