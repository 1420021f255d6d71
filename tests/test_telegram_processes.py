"""`copilot telegram` as real processes on one Redis: one polls, the other stands by and takes the poller
over after the holder is killed with SIGKILL (its lease expires); the token never reaches a log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import redis

from server.in_thread import free_port
from tests.support import ROOT
from tests.support.serving import serve_app
from tests.support.telegram_double import TelegramDouble
from tools.keys import AccountKeys

TOKEN = "7000002:BBprocess-token-Secret_987654"
TRADER = 4242


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "server.cli", "telegram"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def test_a_standby_takes_the_poller_over_after_kill_9(
    redis_server: Any, shared_data: Path, tmp_path: Path
) -> None:
    double = TelegramDouble(TOKEN)
    double.add_user(TRADER, "trader")
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    with serve_app(double.app()) as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM__", "SERVER__", "REDIS"))},
            "REDIS_URL": redis_server.url,
            "REDIS__PREFIX": prefix,
            "DATA_DIR": str(tmp_path / "data"),
            "FALLBACK_DATA_DIR": str(shared_data),
            "LOGGING__FILE": "",
            "LOGGING__LEVEL": "DEBUG",  # the most a log could say about a request: still no token
            "LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: slash commands only
            "TELEGRAM__BOT_TOKEN": TOKEN,
            "TELEGRAM__ALLOWED_CHATS": f'{{"{TRADER}": "local"}}',
            "TELEGRAM__API_BASE_URL": url,
            "TELEGRAM__LEASE_SECONDS": "2",
            "TELEGRAM__POLL_TIMEOUT": "1",
        }
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        holder = start(env, logs[0])
        standby: subprocess.Popen[bytes] | None = None
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            double.wait_for(lambda: "telegram poller: leading" in logs[0].read_text(), 90, "A leading")
            standby = start(env, logs[1])
            double.wait_for(lambda: "telegram: bot ready" in logs[1].read_text(), 90, "B standing by")
            double.say(TRADER, "/portfolio")
            first = double.wait_for(lambda: double.chat_messages(TRADER), what="A's answer")
            assert first[0].text.startswith("Balance"), first[0].text
            assert "leading" not in logs[1].read_text()  # B only stood by
            notices = AccountKeys(prefix, "paper").notices  # the local user's account
            fill = {
                "ticket": 7,
                "kind": "tp",
                "symbol": "XAUUSD",
                "side": "BUY",
                "lots": 0.1,
                "price": 2050.5,
            }
            first_id = client.xadd(notices, {"kind": "fill", "data": json.dumps(fill)})
            double.wait_for(
                lambda: any("#7" in m.text for m in double.chat_messages(TRADER)), what="A's notice"
            )
            # Killed only once A noted the delivery: a kill between the send and that write repeats the
            # notice (at least once, never lost), which test_telegram_cards pins down on its own.
            cursor = f"{prefix}telegram:cursor:{TRADER}"
            double.wait_for(lambda: client.get(cursor) == first_id, what="A's cursor past #7")

            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(10)
            double.say(TRADER, "/help")
            client.xadd(notices, {"kind": "fill", "data": json.dumps({**fill, "ticket": 8, "kind": "sl"})})
            double.wait_for(
                lambda: len(double.chat_messages(TRADER)) >= 4,
                what="B's answer and notice after the takeover",
            )
            assert "telegram poller: leading" in logs[1].read_text()
            texts = [m.text for m in double.chat_messages(TRADER)]
            assert len(texts) == 4 and sum("/portfolio" in t for t in texts) == 1, texts  # /help's answer
            # The cursor moved with the lease: the notice A delivered is not repeated, B's comes once.
            assert [t for t in texts if t.startswith("🔔")] == [
                "🔔 Take profit hit: #7 BUY 0.1 lots XAUUSD at 2050.5",
                "🔔 Stop loss hit: #8 BUY 0.1 lots XAUUSD at 2050.5",
            ], texts
        finally:
            for proc in (holder, standby):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)
            code = standby.wait(30) if standby is not None else None
        assert code == 0, logs[1].read_text()[-3000:]
        assert client.get(f"{prefix}leader:telegram") is None  # released on the way out
        client.close()
        for log in logs:
            text = log.read_text()
            assert "/bot<token>/getUpdates" in text, text[-2000:]  # the URLs were logged, redacted
            assert TOKEN not in text and TOKEN.split(":")[1] not in text, "the bot token is in a log"
