"""Notices pushed to the allowed chats as they happen: fills, SL/TP closes, fired alerts (the accounts' Redis
notice streams, tools/notices.py) and proposals about to expire (the cards the bot sent).

Only the poller's lease holder runs this, so a notice goes out once whatever the number of workers. Each chat
has its cursor in Redis (`{prefix}telegram:cursor:{chat}`, the last stream id delivered there), written
right after the message is sent: a standby that takes over starts from it, repeating nothing and skipping
nothing (a holder killed between Telegram's answer and that write, a few milliseconds, would send one
notice twice rather than lose it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from graph.threads import account_for
from server.telegram.bot import TelegramBot, session_for
from server.telegram.cards import alert_notice, expiry_notice, fill_notice
from tools.notices import Notice, last_id, read_notices

log = logging.getLogger("copilot.telegram")

POLL_SECONDS = 0.5
WARN_BEFORE_SECONDS = 60


class NoticePusher:
    def __init__(
        self, bot: TelegramBot, tg: Any, leading: Callable[[], bool], now: Callable[[], float] = time.time
    ) -> None:
        self.bot = bot
        self.now = now  # the wall clock proposals expire by
        self.tg = tg  # the telegram.Bot that sends
        self.leading = leading
        self.redis = bot.redis
        self.prefix = bot.settings.redis.prefix

    def cursor_key(self, chat_id: int) -> str:
        return f"{self.bot.prefix}cursor:{chat_id}"

    async def start_cursors(self) -> None:
        """A chat seen for the first time starts at its account's newest notice (no history flood)."""
        for chat_id, user in self.bot.chats.allowed.items():
            start = await last_id(self.redis, self.prefix, account_for(user))
            await self.redis.set(self.cursor_key(chat_id), start, nx=True)

    async def run(self) -> None:
        await self.start_cursors()
        while True:
            for chat_id, user in self.bot.chats.allowed.items():
                try:
                    await self.push_notices(chat_id, user)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Telegram or Redis away: the cursor stays, retried next round
                    log.warning("telegram notices for chat %s: %s", chat_id, exc)
            try:
                await self.push_expiries()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("telegram expiry notices: %s", exc)
            await asyncio.sleep(POLL_SECONDS)

    async def push_notices(self, chat_id: int, user: str) -> int:
        cursor = await self.redis.get(self.cursor_key(chat_id)) or "0-0"
        notices = await read_notices(self.redis, self.prefix, account_for(user), str(cursor), None)
        if not notices:
            return 0
        prefs = await self.bot.copilot.prefs.get(user)  # the trader's `notify`: which kinds are pushed
        sent = 0
        for notice in notices:
            if not self.leading():  # the lease moved on: the new holder sends from the cursor
                return sent
            if prefs.notifies(notify_kind(notice)):
                await self.bot.send(self.tg, chat_id, render(notice))
                sent += 1
            await self.redis.set(self.cursor_key(chat_id), notice.id)  # a muted kind is passed, not kept
        return sent

    async def push_expiries(self) -> None:
        """A warning a minute before a card's proposal expires (if it still waits), and the card closed once
        it has expired."""
        now = self.now()
        due = cast(
            list[tuple[str, float]],
            await self.redis.zrangebyscore(
                self.bot.expiring_key, "-inf", now + WARN_BEFORE_SECONDS, withscores=True
            ),
        )
        for member, score in due:
            expires = float(score)
            chat_s, user, proposal_id = str(member).split("|", 2)
            chat_id = int(chat_s)
            state = await self.bot.copilot.state(user, session_for(chat_id))
            pending = state.pending_approval if state is not None else None
            waiting = pending is not None and pending["proposal_id"] == proposal_id
            if expires <= now:
                if await self.redis.zrem(self.bot.expiring_key, member) and waiting:
                    await self.bot.close_card(
                        self.tg, chat_id, proposal_id, "Expired: nothing was done.", "the clock"
                    )
                continue
            if not waiting:
                await self.redis.zrem(self.bot.expiring_key, member)
                continue
            if not (await self.bot.copilot.prefs.get(user)).notifies("expiries"):
                continue  # muted: no warning (the card is still closed when it expires)
            key = f"{self.bot.prefix}warned:{proposal_id}"
            if await self.redis.set(key, "1", nx=True, ex=self.bot.ttl) and pending is not None:
                await self.bot.send(self.tg, chat_id, expiry_notice(pending, int(expires - now)))


def notify_kind(notice: Notice) -> str:
    """The preference (tools.preferences `notify`) a notice belongs to: alerts, fills (an order filled) or
    closes (a position closed by its SL/TP or by hand)."""
    if notice.kind == "alert":
        return "alerts"
    return "fills" if notice.data.get("kind", "open") == "open" else "closes"


def render(notice: Notice) -> str:
    return alert_notice(notice.data) if notice.kind == "alert" else fill_notice(notice.data)
