"""Cards on a real Copilot, sent by a real telegram.Bot over HTTP to the Bot API double (the wall clock moved
by the test): an expiring card is warned once, then closed, and a late press places nothing; a refused edit
keeps the card's buttons, and approving it then places one order, a second press none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from telegram import Bot

from config import Settings
from config.settings import TelegramSettings
from graph.approval import Decision
from server.telegram.bot import TelegramBot
from server.telegram.notices import NoticePusher
from tests.support.graph import CopilotFactory, WallClock, buy_levels, positions
from tests.support.serving import serve_app
from tests.support.telegram_double import TelegramDouble
from tools.locks import Leases
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
