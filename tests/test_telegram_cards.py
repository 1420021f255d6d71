"""Cards on a real Copilot, sent by a real telegram.Bot over HTTP to the Bot API double (the wall clock moved
by the test): an expiring card is warned once, then closed, and a late press places nothing; a refused edit
keeps the card's buttons, and approving it then places one order, a second press none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from telegram import Bot

from config import Settings
from config.settings import TelegramSettings
from graph.approval import Decision
from graph.threads import account_for
from server.telegram.bot import TelegramBot
from server.telegram.notices import NoticePusher
from tests.support.graph import CopilotFactory, WallClock, buy_levels, positions
from tests.support.serving import serve_app
from tests.support.telegram_double import TelegramDouble
from tools.locks import Leases
from tools.notices import notices_key
from tools.services import Services

TOKEN = "7000003:CCexpiry-token-Secret_55555"
ALICE = 111


@pytest.fixture
async def double_bot() -> AsyncIterator[tuple[TelegramDouble, Bot]]:
    double = TelegramDouble(TOKEN)
    double.add_user(ALICE, "alice")
    with serve_app(double.app()) as url:
        async with Bot(TOKEN, base_url=f"{url}/bot") as bot:
            yield double, bot


async def test_an_expiring_card_is_warned_once_then_closed_and_a_late_press_places_nothing(
    double_bot: tuple[TelegramDouble, Bot],
    make_copilot: CopilotFactory,
    services: Services,
    settings: Settings,
    redis_client: aioredis.Redis,
    wall: WallClock,
) -> None:
    double, tg = double_bot
    tuned = settings.model_copy(
        update={"telegram": TelegramSettings(bot_token=TOKEN, allowed_chats={ALICE: "alice"})}
    )
    async with make_copilot() as copilot:
        bot = TelegramBot(copilot, tuned, redis_client, Leases(redis_client, settings.redis.prefix, 6))
        levels = await buy_levels(services)
        result = await copilot.chat(
            "alice", "tg111", f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
        )
        assert result.pending_approval is not None, result.response
        await bot.answer(tg, ALICE, "alice", result)
        card = next(m for m in double.chat_messages(ALICE) if m.markup)
        pusher = NoticePusher(bot, tg, lambda: True, now=lambda: wall().timestamp())
        ttl = settings.risk.proposal_ttl_seconds

        await pusher.push_expiries()  # far from its expiry: nothing
        sent = len(double.chat_messages(ALICE))
        wall.advance(ttl - 30)
        await pusher.push_expiries()
        await pusher.push_expiries()
        warnings = [m.text for m in double.chat_messages(ALICE)[sent:]]
        assert (
            len(warnings) == 1 and warnings[0].startswith("⏳ Proposal") and "expires in 30 s" in warnings[0]
        )

        wall.advance(60)
        await pusher.push_expiries()
        await pusher.push_expiries()
        assert card.markup is None and len(card.edits) == 1 and "Expired: nothing was done." in card.text

        pid = result.pending_approval["proposal_id"]
        late = Decision(proposal_id=pid, decision="approve", edits={}, reason="")
        await bot.apply(tg, ALICE, "alice", late, by="@alice")
        assert await positions(services) == []
        assert "NOT EXECUTED: the proposal expired" in card.text and "Approve pressed by @alice" in card.text


async def test_a_refused_edit_keeps_the_buttons_and_one_approval_places_one_order(
    double_bot: tuple[TelegramDouble, Bot],
    make_copilot: CopilotFactory,
    services: Services,
    settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    double, tg = double_bot
    tuned = settings.model_copy(
        update={"telegram": TelegramSettings(bot_token=TOKEN, allowed_chats={ALICE: "alice"})}
    )
    async with make_copilot() as copilot:
        bot = TelegramBot(copilot, tuned, redis_client, Leases(redis_client, settings.redis.prefix, 6))
        levels = await buy_levels(services)
        result = await copilot.chat(
            "alice", "tg111", f"/buy XAUUSD sl {levels['stop_loss']} tp {levels['take_profit']}"
        )
        assert result.pending_approval is not None, result.response
        await bot.answer(tg, ALICE, "alice", result)
        card = next(m for m in double.chat_messages(ALICE) if m.markup)
        pid = result.pending_approval["proposal_id"]

        zero = Decision(proposal_id=pid, decision="edit", edits={"size_lots": 0.0}, reason="")
        await bot.apply(tg, ALICE, "alice", zero, by="@alice")
        assert card.markup is not None and "Not applied" in card.text, card.text
        assert await positions(services) == []

        approve = Decision(proposal_id=pid, decision="approve", edits={}, reason="")
        await bot.apply(tg, ALICE, "alice", approve, by="@alice")
        await bot.apply(tg, ALICE, "alice", approve, by="@alice")
        assert card.markup is None and "EXECUTED" in card.text, card.text
        assert len(await positions(services)) == 1


class Killed(BaseException):
    """The process dying: nothing after the raise runs, and no `except Exception` handler sees it."""


async def test_a_holder_killed_between_a_send_and_its_cursor_repeats_that_notice_and_loses_none(
    double_bot: tuple[TelegramDouble, Bot],
    make_copilot: CopilotFactory,
    settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    """Telegram's sendMessage has no idempotency key and a bot cannot read its chat back, so a holder killed
    after Telegram accepted a notice but before it wrote the chat's cursor cannot be told from one killed
    before the send: the next holder sends that one notice again (at least once), and every other once."""
    double, tg = double_bot
    tuned = settings.model_copy(
        update={"telegram": TelegramSettings(bot_token=TOKEN, allowed_chats={ALICE: "alice"})}
    )
    key = notices_key(settings.redis.prefix, account_for("alice"))
    async with make_copilot() as copilot:
        bot = TelegramBot(copilot, tuned, redis_client, Leases(redis_client, settings.redis.prefix, 6))
        holder = NoticePusher(bot, tg, lambda: True)
        await holder.start_cursors()
        for ticket in (1, 2, 3):
            fill = {
                "ticket": ticket,
                "kind": "tp",
                "symbol": "XAUUSD",
                "side": "BUY",
                "lots": 0.1,
                "price": 2050.5,
            }
            await redis_client.xadd(key, {"kind": "fill", "data": json.dumps(fill)})
        real_send = bot.send
        sends = 0

        async def send_then_die(*args: Any, **kwargs: Any) -> int:
            nonlocal sends
            message_id = await real_send(*args, **kwargs)
            sends += 1
            if sends == 2:
                raise Killed  # Telegram has #2; the cursor still says #1
            return message_id

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bot, "send", send_then_die)
            with pytest.raises(Killed):
                await holder.push_notices(ALICE, "alice")

        standby = NoticePusher(bot, tg, lambda: True)
        await standby.start_cursors()  # the chat's cursor exists: kept, not reset to the newest notice
        assert await standby.push_notices(ALICE, "alice") == 2
        assert await standby.push_notices(ALICE, "alice") == 0
        tickets = [int(m.text.split("#")[1].split()[0]) for m in double.chat_messages(ALICE)]
        assert tickets == [1, 2, 2, 3], [m.text for m in double.chat_messages(ALICE)]
