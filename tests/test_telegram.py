"""The Telegram bot through a strict Bot API double over real HTTP (tests/support/telegram_double.py).

Two app workers (two `create_app`s under uvicorn on one Redis and one key prefix, as `serve --workers 2`)
both run the bot: one holds the poller lease. Chats: Alice's private chat (her user id), a group of hers,
Bob's private chat, and a stranger. The model is the suite's scripted model (tests/api_support.Script).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from config import Settings
from server.telegram.format import LIMIT, escape, markdown_to_html
from tests.support.api_support import api_settings, as_user, buy_command, running_app, user_keys
from tests.support.serving import serve_app
from tests.support.telegram_double import BotMessage, TelegramDouble, parse_html
from tools.keys import AccountKeys

TOKEN = "7000001:AAtest-token-Secret_0123456789"
ALICE, BOB, STRANGER, GROUP = 111, 333, 999, -1001234
ALLOWED = {ALICE: "alice", GROUP: "alice", BOB: "bob"}


@dataclass
class World:
    double: TelegramDouble
    double_url: str
    urls: list[str]
    settings: Settings
    redis: redis.Redis

    def after(self, chat: int, count: int, n: int = 1, what: str = "") -> list[BotMessage]:
        """The chat's bot messages once there are at least `count + n` of them (the new ones)."""

        def new() -> list[BotMessage] | None:
            messages = self.double.chat_messages(chat)
            return messages[count:] if len(messages) >= count + n else None

        return self.double.wait_for(new, what=what or f"{n} new message(s) in chat {chat}")

    def filled_orders(self, user: str = "alice") -> int:
        key = AccountKeys(self.settings.redis.prefix, f"paper-{user}").orders
        records = [json.loads(r) for r in self.redis.lrange(key, 0, -1)]  # type: ignore[union-attr]
        return sum(1 for r in records if r.get("status") == "filled")

    def notice(self, kind: str, data: dict[str, Any], user: str = "alice") -> None:
        key = AccountKeys(self.settings.redis.prefix, f"paper-{user}").notices
        self.redis.xadd(key, {"kind": kind, "data": json.dumps(data)})


@pytest.fixture(scope="module")
def world(redis_server: Any, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    double = TelegramDouble(TOKEN)
    for user_id, name in ((ALICE, "alice"), (BOB, "bob"), (STRANGER, "mallory")):
        double.add_user(user_id, name)
    double.add_group(GROUP, "Alice's desk")
    with serve_app(double.app()) as double_url:
        telegram = {"bot_token": TOKEN, "allowed_chats": ALLOWED, "api_base_url": double_url,
                    "lease_seconds": 3, "poll_timeout": 1}  # fmt: skip
        keys = {"api_keys": user_keys("alice", "bob")}
        tmp = tmp_path_factory.mktemp("tg")
        settings = api_settings(redis_server.url, shared_data, tmp, server=keys, telegram=telegram)
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        with running_app(settings) as first, running_app(settings) as second:
            double.wait_for(lambda: double.calls_of("getUpdates"), what="a poller")
            yield World(double, double_url, [first, second], settings, client)
        client.close()
    if os.environ.get("TELEGRAM_TRANSCRIPT"):  # what the double received and sent, for the README
        Path(os.environ["TELEGRAM_TRANSCRIPT"]).write_text("\n".join(double.log) + "\n")


def test_portfolio_is_answered_in_the_chat_through_a_429(world: World) -> None:
    double, before = world.double, len(world.double.chat_messages(ALICE))
    double.flood_next("sendMessage", 1)  # Telegram's flood control on the first try: retried after 1 s
    double.say(ALICE, "/portfolio")
    reply = world.after(ALICE, before, what="the /portfolio answer")[0]
    assert reply.text.startswith("Balance 10000.0") and "Daily P&L" in reply.text, reply.text
    assert "P&amp;L" in reply.html
    assert [c.status for c in double.calls_of("sendMessage")].count(429) == 1


def test_a_stranger_gets_one_line_and_nothing_else(world: World) -> None:
    double = world.double
    double.say(STRANGER, "/portfolio")
    double.say(GROUP, "/portfolio", user_id=STRANGER)  # a member of Alice's group who is not Alice
    before = len(double.chat_messages(BOB))
    double.say(BOB, "/portfolio")  # a barrier: answered after (or while) the stranger's lines went out
    world.after(BOB, before)
    lines = double.wait_for(lambda: double.chat_messages(STRANGER), what="the stranger's line")
    assert [m.text for m in lines] == [
        f"This chat (id {STRANGER}) is not authorised; add it to TELEGRAM__ALLOWED_CHATS to use the copilot."
    ]
    in_group = double.wait_for(lambda: [m for m in double.chat_messages(GROUP) if str(STRANGER) in m.text])
    assert [m.text for m in in_group] == [f"You (Telegram user {STRANGER}) are not authorised here."]
    prefix = world.settings.redis.prefix
    assert not world.redis.keys(f"{prefix}*{STRANGER}*"), "no session, no cursor for a stranger"


def _card(world: World, chat: int, count: int) -> BotMessage:
    return world.double.wait_for(
        lambda: next((m for m in world.double.chat_messages(chat)[count:] if m.markup), None), what="a card"
    )


def test_one_order_after_double_presses_a_strangers_press_and_a_racing_web_approval(world: World) -> None:
    double, web = world.double, as_user(world.urls[0], "alice")
    orders = world.filled_orders()
    count = len(double.chat_messages(GROUP))
    double.say(GROUP, buy_command(web), user_id=ALICE)
    card = _card(world, GROUP, count)
    datas = [b["callback_data"] for b in card.markup["inline_keyboard"][0]]  # type: ignore[index]
    assert [d[0] for d in datas] == ["a", "r", "e"] and all(len(d.encode()) <= 64 for d in datas)
    approve, proposal_id = datas[0], datas[0][2:]
    for text in (
        "Approval needed",
        "Entry",
        "SL",
        "TP",
        "At risk",
        "% of equity",
        "R:R",
        "Expires",
        "your risk 1 %, cap 1 %",
    ):
        assert text in card.text, card.text

    # A group member who is not Alice, and a press from a chat that is not allowed: refused, nothing done.
    refused = [double.press(GROUP, card.message_id, approve, STRANGER),
               double.press(STRANGER, card.message_id, approve, STRANGER)]  # fmt: skip
    double.wait_for(lambda: all(double.queries[q]["answered"] for q in refused), what="refusals answered")
    assert [double.queries[q]["text"] for q in refused] == ["Not authorised."] * 2
    assert card.edits == [] and world.filled_orders() == orders

    # Alice presses Approve twice while the web page approves the same proposal.
    decision = {"proposal_id": proposal_id, "decision": "approve"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        from_web = pool.submit(web.post, f"/api/sessions/tg{GROUP}/approval", json=decision)
        presses = [double.press(GROUP, card.message_id, approve, ALICE) for _ in range(2)]
        answer = from_web.result()
    assert answer.status_code == 200, answer.text
    double.wait_for(lambda: all(double.queries[q]["answered"] for q in presses), what="presses answered")

    def edits() -> list[Any]:
        return [c for c in double.calls_of("editMessageText") if c.params["message_id"] == card.message_id]

    double.wait_for(lambda: len(edits()) >= 2, what="each press's outcome put on the card")
    assert "EXECUTED" in card.text and card.markup is None, card.html
    assert world.filled_orders() == orders + 1
    positions = web.get("/api/portfolio").json()["positions"]
    assert len(positions) == 1, positions


def test_a_superseded_card_places_no_order_and_edit_is_gated_again(world: World) -> None:
    double, web = world.double, as_user(world.urls[1], "alice")
    orders = world.filled_orders()
    count = len(double.chat_messages(ALICE))
    double.say(ALICE, buy_command(web))
    first = _card(world, ALICE, count)
    a_first, e_first = (b["callback_data"] for b in first.markup["inline_keyboard"][0][::2])  # type: ignore[index]

    # Edit: the reply is a new stop and target, priced and gated again: a new card.
    count = len(double.chat_messages(ALICE))
    double.press(ALICE, first.message_id, e_first, ALICE)
    world.after(ALICE, count, what="the edit help")
    ask = float(web.get("/api/quote/XAUUSD").json()["ask"])
    stop, target = round(ask - 8, 2), round(ask + 24, 2)
    count = len(double.chat_messages(ALICE))
    double.say(ALICE, f"sl {stop} tp {target}")
    second = _card(world, ALICE, count)
    assert f"SL {stop}" in second.text and f"TP {target}" in second.text, second.text
    assert second.markup is not None and first.markup is None  # the edited card shows the outcome

    # The first card, pressed now, is not the pending proposal any more: nothing is placed.
    double.press(ALICE, first.message_id, a_first, ALICE)
    reject = second.markup["inline_keyboard"][0][1]["callback_data"]
    double.press(ALICE, second.message_id, reject, ALICE)
    double.wait_for(lambda: second.markup is None, what="the second card decided")
    assert "REJECTED" in second.text.upper(), second.text
    assert world.filled_orders() == orders


def test_a_notice_is_pushed_once_with_two_workers(world: World) -> None:
    double, web = world.double, as_user(world.urls[1], "alice")
    counts = {chat: len(double.chat_messages(chat)) for chat in (ALICE, GROUP)}
    session = "web-notice"
    asked = web.post("/api/chat", json={"message": buy_command(web), "session_id": session}).json()
    proposal_id = asked["pending_approval"]["proposal_id"]
    done = web.post(
        f"/api/sessions/{session}/approval", json={"proposal_id": proposal_id, "decision": "approve"}
    )
    assert done.status_code == 200 and done.json()["order"]["status"] == "executed", done.text
    ticket = done.json()["order"]["ticket"]
    # A marker after the fill: once it arrived, a second copy of the fill would have arrived before it.
    world.notice("alert", {"symbol": "XAUUSD", "condition": "above", "price": 1.5, "message": "marker"})
    for chat in (ALICE, GROUP):  # both chats are Alice's
        double.wait_for(lambda c=chat: any("marker" in m.text for m in double.chat_messages(c)[counts[c] :]))
        fills = [m.text for m in double.chat_messages(chat)[counts[chat] :] if f"#{ticket}" in m.text]
        assert len(fills) == 1 and fills[0].startswith("🔔 Filled"), fills
    assert double.conflicts == 0  # never two pollers at once
    assert not [m for m in double.chat_messages(BOB) if f"#{ticket}" in m.text]  # Bob's chat: his account


def test_the_traders_notify_preference_mutes_the_kinds_left_out(world: World) -> None:
    """Bob keeps only alerts: his SL close is passed over (not sent later either), his alert arrives."""
    double, bob = world.double, as_user(world.urls[0], "bob")
    saved = bob.put("/api/preferences", json={"notify": ["alerts"]})
    assert saved.status_code == 200 and saved.json()["notify"] == ["alerts"], saved.text
    try:
        count = len(double.chat_messages(BOB))
        world.notice("fill", {"kind": "sl", "ticket": 4242, "side": "buy", "symbol": "XAUUSD"}, user="bob")
        world.notice(
            "alert", {"symbol": "XAUUSD", "condition": "above", "price": 1.5, "message": "bob-mark"}, "bob"
        )
        double.wait_for(lambda: any("bob-mark" in m.text for m in double.chat_messages(BOB)[count:]))
        texts = [m.text for m in double.chat_messages(BOB)[count:]]
        assert not [t for t in texts if "#4242" in t], texts
    finally:
        assert bob.put("/api/preferences", json={"notify": None}).status_code == 200  # back to all


def test_hostile_texts_are_escaped(world: World) -> None:
    double = world.double
    count = len(double.chat_messages(ALICE))
    world.notice("alert", {"symbol": "XAUUSD", "condition": "below", "price": 2034.55, "message": "<b> & co"})
    alert = double.wait_for(lambda: [m for m in double.chat_messages(ALICE)[count:] if "co" in m.text])[0]
    assert "XAUUSD below 2034.55" in alert.text and alert.text.endswith("<b> &amp; co".replace("&amp;", "&"))
    count = len(double.chat_messages(ALICE))
    double.say(ALICE, "hola <script>alert(1)</script> & **bold** `a<b`")  # the scripted model echoes it
    reply = world.after(ALICE, count, what="the echo")[0]
    assert reply.text == "Echo: hola <script>alert(1)</script> & bold a<b", reply.html
    assert (
        "&lt;script&gt;" in reply.html and "<b>bold</b>" in reply.html and "<code>a&lt;b</code>" in reply.html
    )


def test_a_long_reply_is_split_and_every_part_parses(world: World) -> None:
    double = world.double
    count = len(double.chat_messages(BOB))
    said = " ".join(["<&>"] * 900)  # 3,599 characters, over 14,000 once escaped
    double.say(BOB, said)
    expected = f"Echo: {said}"

    def whole() -> list[BotMessage] | None:
        new = double.chat_messages(BOB)[count:]
        return new if len("".join(m.text for m in new)) >= len(expected) else None

    parts = double.wait_for(whole, what="the whole echo")
    assert len(parts) >= 4 and all(len(m.html) <= LIMIT for m in parts)
    assert "".join(m.text for m in parts) == expected


def test_the_token_is_never_in_the_logs(world: World, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.DEBUG):
        before = len(world.double.chat_messages(BOB))
        world.double.say(BOB, "/help")
        world.after(BOB, before)
    assert caplog.records and TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text


def test_a_bot_telegram_refuses_never_stops_the_server(
    world: World, redis_server: Any, shared_data: Path, tmp_path: Path
) -> None:
    telegram = {"bot_token": "7000001:wrong", "allowed_chats": {ALICE: "local"},
                "api_base_url": world.double_url, "lease_seconds": 1}  # fmt: skip
    settings = api_settings(redis_server.url, shared_data, tmp_path, telegram=telegram)
    refused = len([c for c in world.double.calls_of("getMe") if c.status == 401])
    with running_app(settings) as url:
        world.double.wait_for(
            lambda: len([c for c in world.double.calls_of("getMe") if c.status == 401]) >= refused + 2,
            what="the bot trying again after a 401",
        )
        assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200
        chat = httpx.post(f"{url}/api/chat", json={"message": "/portfolio", "session_id": "s1"}, timeout=60)
        assert chat.status_code == 200 and chat.json()["response"].startswith("Balance"), chat.text


# --- the format, and the double's strictness (what makes the tests above mean something) ---------------


HOSTILE = ["<b> & co", "price 2034.55 < 2040 & > 2000", "<script>alert(1)</script>", "a &amp b",
           "&#99999999;", "**unclosed <i>", "`<code>` and ```\n<pre> & </pre>\n```",
           "[x](javascript:alert(1)) <a href=x>"]  # fmt: skip


@pytest.mark.parametrize("text", HOSTILE)
def test_model_markdown_becomes_html_telegram_parses(text: str) -> None:
    for part in markdown_to_html(text):
        shown = parse_html(part)
        assert "<script" not in part and "javascript:" not in part.split('href="')[-1][:11]
        assert shown.strip()
    assert parse_html(escape(text)) == text


def test_long_replies_are_split_under_4096() -> None:
    text = "\n".join([f"- line {i} with **bold** & <tags> " + "x" * 60 for i in range(300)])
    text += "\n```\n" + "code < & > line\n" * 500 + "```\n" + "y&" * 5000
    parts = markdown_to_html(text)
    assert len(parts) > 3
    for part in parts:
        assert len(part) <= LIMIT and len(parse_html(part)) <= LIMIT
    shown = "".join(parse_html(p) for p in parts)
    assert shown.count("code < & > line") == 500 and "y&" * 5000 in shown  # a cut line loses nothing


def test_the_double_is_as_strict_as_telegram() -> None:
    double = TelegramDouble(TOKEN)
    double.add_user(ALICE, "alice")
    with serve_app(double.app()) as url, httpx.Client(base_url=f"{url}/bot{TOKEN}") as api:
        assert httpx.post(f"{url}/botwrong:token/getMe").json() == {
            "ok": False, "error_code": 401, "description": "Unauthorized"}  # fmt: skip

        def refused(method: str, **params: Any) -> str:
            answer = api.post(f"/{method}", json=params)
            body = answer.json()
            assert answer.status_code == 400 and body["ok"] is False and body["error_code"] == 400, body
            return str(body["description"])

        assert "chat not found" in refused("sendMessage", chat_id=STRANGER, text="hi")
        for bad in ("<b>unclosed", "<script>x</script>", "a < b", "a & b", "</b>"):
            assert "can't parse entities" in refused(
                "sendMessage", chat_id=ALICE, text=bad, parse_mode="HTML"
            )
        assert "too long" in refused("sendMessage", chat_id=ALICE, text="x" * 4097)
        button = {"inline_keyboard": [[{"text": "Approve", "callback_data": "a" * 65}]]}
        assert "BUTTON_DATA_INVALID" in refused("sendMessage", chat_id=ALICE, text="x", reply_markup=button)
        assert "query ID is invalid" in refused("answerCallbackQuery", callback_query_id="nope")
        # Form data as python-telegram-bot sends it, and the envelope of a success.
        sent = api.post(
            "/sendMessage", data={"chat_id": str(ALICE), "text": "&lt;ok&gt;", "parse_mode": "HTML"}
        )
        assert sent.json()["ok"] is True and sent.json()["result"]["text"] == "<ok>"
        double.flood_next("getMe", 3)
        flooded = api.get("/getMe").json()
        assert flooded["error_code"] == 429 and flooded["parameters"] == {"retry_after": 3}
        assert api.get("/getMe").json()["result"]["username"] == "copilot_test_bot"
