"""The HTTP API against its own OpenAPI document: schemathesis fuzzes and chains every operation of the real
server (uvicorn, real Redis, an API key) and must find nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.api.routes import events
from tests.api_support import ApiServer, user_keys

USERS = user_keys("ada")
KEY = next(iter(USERS))
SEED = 22
ST = Path(sys.executable).with_name("st")


@pytest.fixture(scope="module")
def url(serve_api: ApiServer) -> Iterator[str]:
    # The live feed ends after one pass instead of 30 s (the server runs in this process), so the fuzzer's
    # many GET /api/events take a moment each.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(events, "STREAM_SECONDS", 0.1)
        patch.setattr(events, "POLL_SECONDS", 0.05)
        yield serve_api("contract", server={"api_keys": USERS})


def test_schemathesis_finds_nothing(url: str, tmp_path: Path) -> None:
    command = [
        str(ST),
        "run",
        f"{url}/openapi.json",
        "--checks=all",
        "--phases=fuzzing,stateful",
        f"--seed={SEED}",
        "--max-examples=20",
        "--workers=1",
        "--generation-database=none",
        "--no-color",
        f"--header=X-API-Key: {KEY}",
        "--request-timeout=30",
        f"--report-dir={tmp_path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
