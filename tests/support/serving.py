"""Servers of the tests: an ASGI app under uvicorn in a thread, a server process waited for until healthy."""

from __future__ import annotations

import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from server.in_thread import serve_in_thread


def serve_app(app: object, port: int | None = None) -> AbstractContextManager[str]:
    """Run an ASGI app under a real uvicorn server in a thread; yields its base URL."""
    return serve_in_thread(app, port, startup_seconds=15)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, name: str = "copilot serve") -> None:
    """Poll `url`/api/health until it answers 200; fail with the end of the process's `log` if the process
    exits first or does not answer within 90 s."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} did not answer at {url}:\n{log.read_text()[-3000:]}")
