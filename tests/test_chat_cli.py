"""`copilot chat` against a real server: streamed text, approval prompts (approve / edit / reject), errors."""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from server.chat_cli import ChatClient, parse_sse
from server.cli import main
from server.in_thread import free_port
from tests.support.api_support import ApiServer, Script, buy_command


@pytest.fixture(scope="module")
def base_url(serve_api: ApiServer) -> str:
    return serve_api("cli", Script())


def client(url: str, answers: list[str]) -> tuple[ChatClient, io.StringIO]:
    out = io.StringIO()
    replies = iter(answers)
    chat = ChatClient(url=url, session_id=f"cli-{uuid.uuid4().hex[:6]}", ask=lambda _: next(replies), out=out)
    return chat, out


def open_positions(url: str) -> int:
    return len(httpx.get(f"{url}/api/portfolio", timeout=30).json()["positions"])


def buy(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as c:
        return buy_command(c)


def test_parse_sse_frames() -> None:
    lines = iter(["event: node", 'data: {"node": "reason"}', "", "event: token", 'data: {"text": "hi"}', ""])
    assert list(parse_sse(lines)) == [("node", {"node": "reason"}), ("token", {"text": "hi"})]


def test_streams_the_answer(base_url: str) -> None:
    chat, out = client(base_url, [])
    chat.turn("hola terminal")
    assert "Echo: hola terminal" in out.getvalue()


def test_approve_from_the_terminal_opens_the_position(base_url: str) -> None:
    before = open_positions(base_url)
    chat, out = client(base_url, ["a"])
    chat.turn(buy(base_url))
    text = out.getvalue()
    assert "approval needed" in text and "at risk $" in text and "EXECUTED" in text
    assert "(your risk 1 %, cap 1 %)" in text  # the trader's risk per trade (no preference: the cap)
    assert open_positions(base_url) == before + 1


def test_edit_then_reject_executes_nothing(base_url: str) -> None:
    before = open_positions(base_url)
    chat, out = client(base_url, ["e", "0.01", "", "", "r", "demasiado riesgo"])
    chat.turn(buy(base_url))
    text = out.getvalue()
    assert text.count("approval needed") == 2  # the edit went back through the gate: a new proposal
    assert "0.01 lots XAUUSD" in text
    assert open_positions(base_url) == before


def test_later_leaves_the_proposal_pending(base_url: str) -> None:
    chat, out = client(base_url, ["l"])
    chat.turn(buy(base_url))
    assert "stays pending" in out.getvalue()
    state = httpx.get(f"{base_url}/api/sessions/{chat.session_id}", timeout=30).json()
    assert state["pending_approval"] is not None


def test_busy_or_invalid_requests_show_the_servers_message(base_url: str) -> None:
    chat, out = client(base_url, [])
    chat.turn("x" * 10_000)  # over max_message_chars
    assert "[error 422]" in out.getvalue() and "too long" in out.getvalue()


def test_cli_command_runs_a_session_until_quit(
    base_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hola cli\n/quit\n"))
    assert main(["chat", "--url", base_url, "--session", "cli-main"]) == 0
    assert "Echo: hola cli" in capsys.readouterr().out


def test_unreachable_server_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    chat, out = client(f"http://127.0.0.1:{free_port()}", ["hola", "/quit"])
    assert chat.loop() == 0
    assert "cannot reach the server" in out.getvalue()


def test_local_chat_needs_no_server(
    redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path
) -> None:
    """`copilot chat --local` as a trader runs it: a real process, typed lines on stdin, answers on stdout."""
    import os
    import subprocess
    import sys

    from server.in_thread import free_port
    from tests.support import ROOT

    env = {**os.environ, "REDIS_URL": redis_url, "REDIS__PREFIX": key_prefix, "DATA_DIR": str(tmp_path / "d"),
           "FALLBACK_DATA_DIR": str(shared_data), "LOGGING__FILE": "",
           "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "server.cli", "chat", "--local", "--session", "local1"],
                          input="/portfolio\n/quit\n", capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "session local1" in done.stdout and "Balance 10000.0" in done.stdout
