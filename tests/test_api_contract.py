"""The HTTP API against its own OpenAPI document: schemathesis fuzzes and chains every operation of the real
server (uvicorn, real Redis, an API key) and must find nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.api.routes import events
from tests.support.api_support import ApiServer, user_keys

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
        "--phases=coverage,fuzzing,stateful",
        f"--seed={SEED}",
        "--max-examples=40",
        "--workers=1",
        "--generation-database=none",
        "--no-color",
        f"--header=X-API-Key: {KEY}",
        "--request-timeout=30",
        f"--report-dir={tmp_path}",
    ]
    # Run in tmp_path: schemathesis keeps a crash cache in its working directory.
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    print(done.stdout[-3000:])  # the summary: operations tested, phases, cases generated (pytest -s)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
    # It did test: every operation, each phase ran (a phase with nothing to do would be "skipped").
    assert "Tested: 25" in done.stdout, done.stdout[-3000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in done.stdout, done.stdout[-3000:]


def test_errors_have_the_declared_shapes(url: str) -> None:
    """The cases the issue found, one by one: each answer is what the document declares for it."""
    with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": KEY}) as client:
        document = client.get("/openapi.json").json()
        # A 405 names every method the path serves, not only the first route's.
        put = client.put("/api/sessions/s1")
        assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET, HEAD"
        assert set(document["paths"]["/api/sessions/{session_id}"]) == {"get", "delete"}
        # A body that is not even UTF-8: 400 {"detail": str}, declared on the route.
        broken = client.post(
            "/api/chat/stream", content=b"\x80", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400 and isinstance(broken.json()["detail"], str)
        assert "400" in document["paths"]["/api/chat/stream"]["post"]["responses"]
        # The code's own 422s are HTTPValidationError too.
        missing = client.post("/api/clear_history")
        assert missing.status_code == 422
        assert missing.json()["detail"] == [
            {
                "loc": ["query", "session_id"],
                "msg": "session_id is required (query parameter or JSON body)",
                "type": "value_error",
            }
        ]
        bad_pattern = client.post("/api/clear_history", params={"session_id": "a:b"})
        assert [e["loc"] for e in bad_pattern.json()["detail"]] == [["query", "session_id"]]
        # An unknown session: 404 {"detail": str}; a known one with nothing running: 409; both declared.
        cancel = client.post("/api/sessions/nobody-here/cancel")
        assert cancel.status_code == 404 and isinstance(cancel.json()["detail"], str)
        assert {"404", "409"} <= set(
            document["paths"]["/api/sessions/{session_id}/cancel"]["post"]["responses"]
        )
        # Without the key: 401, declared on every /api route but the health check.
        assert httpx.get(f"{url}/api/portfolio").status_code == 401
        for path, operations in document["paths"].items():
            for operation in operations.values():
                assert ("401" in operation["responses"]) == (path != "/api/health"), path
