"""The Telegram bot: `run_telegram` runs it in a server worker (or `copilot telegram` alone) under the
deployment's poller lease (tools/leader.py): one worker polls Telegram and pushes notices, the others wait
and take over within one lease when it dies. Nothing here can stop the server: every failure is logged and
the work started again while the lease is held."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from config import Settings
from graph.copilot import Copilot
from server.telegram.bot import TelegramBot
from server.telegram.send import redact_token_in_logs
from tools.leader import Leader
from tools.locks import Leases

log = logging.getLogger("copilot.telegram")


def leader_key(settings: Settings) -> str:
    return f"{settings.redis.prefix}leader:telegram"


async def poll(bot: TelegramBot, leader: Leader) -> None:
    """Long polling and the notice pusher, until cancelled (the lease lost, the server stopping)."""
    from server.telegram.notices import NoticePusher

    app = bot.application()
    await app.initialize()
    try:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=bot.settings.telegram.poll_timeout, poll_interval=0.0)
        log.info("telegram: polling as @%s", app.bot.username)
        try:
            await NoticePusher(bot, app.bot, lambda: leader.leading).run()
        finally:
            with contextlib.suppress(Exception):
                await app.updater.stop()
            with contextlib.suppress(Exception):
                await app.stop()
    finally:
        with contextlib.suppress(Exception):
            await app.shutdown()


async def run_telegram(copilot: Copilot, settings: Settings, redis: Redis, locks: Leases) -> None:
    """Forever (until cancelled): the bot on whichever worker holds the lease."""
    redact_token_in_logs(settings.telegram.bot_token.get_secret_value())
    bot = TelegramBot(copilot, settings, redis, locks)
    leader = Leader(redis, leader_key(settings), settings.telegram.lease_seconds, "telegram poller")
    log.info("telegram: bot ready for %d chat(s); polls while holding %s", len(bot.chats.allowed), leader.key)
    try:
        await leader.run(lambda: poll(bot, leader))
    except asyncio.CancelledError:
        raise
    except Exception:  # never the server's problem
        log.exception("telegram bot stopped")
