"""The Telegram bot: one more client of the copilot facade (graph/copilot.py), like the web page and the CLI.

A chat in `telegram.allowed_chats` talks to its user's session `tg<chat id>`: free text and slash commands go
to `Copilot.chat`, a proposal arrives as a card with Approve / Reject / Edit buttons, and a press is
`Copilot.decide` on that exact proposal. Every run takes the session's lease first (tools/locks.py, the same
one the HTTP API's runs take), queueing behind a run in progress, so a press racing a web-page approval, or
a second press, is decided after the first and answers with its outcome (`replayed`): one order.

Who may use an allowed chat: in a private chat the chat id is the trader's own Telegram user id. In a group
chat, a message or a press counts only when the Telegram user who sent it is an allowed chat of the same
copilot user too (their private chat id, which is their user id): the group's other members are refused,
and a press from them changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler
from telegram.ext import filters as tg_filters

from config import Settings
from graph.approval import Decision, Proposal
from graph.copilot import Copilot, NoPendingApproval
from graph.schemas import ChatResult
from server.telegram.cards import SHORT, decided_card, keyboard, outcome_line, parse_callback, proposal_card
from server.telegram.format import escape, markdown_to_html
from server.telegram.send import with_retry
from tools.locks import LeaseHeld, Leases

log = logging.getLogger("copilot.telegram")

EDIT_HELP = (
    "Reply with the new levels, e.g. <code>sl 2030.5 tp 2050</code>, or a size in lots, e.g. "
    "<code>0.2</code> (re-checked by the risk gate)."
)
_EDIT_WORDS = {"sl": "stop_loss", "tp": "take_profit", "size": "size_lots", "lots": "size_lots"}
_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"


def session_for(chat_id: int) -> str:
    return f"tg{chat_id}"


def not_authorised(chat_id: int) -> str:
    return (
        f"This chat (id {chat_id}) is not authorised; add it to TELEGRAM__ALLOWED_CHATS to use the copilot."
    )


def parse_edits(text: str) -> dict[str, float] | None:
    """`sl X tp Y`, `size N` / `lots N`, or a bare size; None when the text is none of these."""
    words = text.strip().lower().split()
    if len(words) == 1 and re.fullmatch(_NUMBER, words[0]):
        return {"size_lots": float(words[0].replace(",", "."))}
    if not words or len(words) % 2:
        return None
    edits: dict[str, float] = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        field = _EDIT_WORDS.get(name)
        if field is None or field in edits or not re.fullmatch(_NUMBER, value):
            return None
        edits[field] = float(value.replace(",", "."))
    return edits


@dataclass
class Chats:
    """telegram.allowed_chats, and who may act in them."""

    allowed: dict[int, str]

    def user_for(self, chat_id: int | None, from_user_id: int | None) -> str | None:
        """The copilot user for a message or press in `chat_id` by Telegram user `from_user_id`, or None."""
        if chat_id is None or from_user_id is None:
            return None
        user = self.allowed.get(chat_id)
        if user is None or self.allowed.get(from_user_id) != user:
            return None
        return user


class TelegramBot:
    """The handlers (long polling runs them on the lease holder only) and what they send."""

    def __init__(self, copilot: Copilot, settings: Settings, redis: Redis, locks: Leases) -> None:
        self.copilot = copilot
        self.settings = settings
        self.redis = redis
        self.locks = locks
        self.chats = Chats(dict(settings.telegram.allowed_chats))
        self.prefix = f"{settings.redis.prefix}telegram:"
        self.ttl = settings.redis.ttl or 7 * 86400

    # --- the python-telegram-bot application --------------------------------------------------------

    def application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        tg = self.settings.telegram
        base = tg.api_base_url.rstrip("/")
        app = (
            ApplicationBuilder()
            .token(tg.bot_token.get_secret_value())
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .concurrent_updates(True)  # a press is not stuck behind another chat's model turn
            .get_updates_read_timeout(tg.poll_timeout + 10)
            .build()
        )
        app.add_handler(CallbackQueryHandler(self.on_press))
        app.add_handler(MessageHandler(tg_filters.ALL, self.on_message))
        app.add_error_handler(self.on_error)
        return app

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram handler failed: %s", context.error, exc_info=context.error)

    # --- sending ------------------------------------------------------------------------------------

    async def send(
        self, bot: Any, chat_id: int, html: str, markup: InlineKeyboardMarkup | None = None
    ) -> int:
        """One message (already HTML, at most 4,096 characters); returns its message id."""
        message = await with_retry(
            lambda: bot.send_message(chat_id, html, parse_mode=ParseMode.HTML, reply_markup=markup),
            "sendMessage",
        )
        return int(message.message_id)

    async def send_markdown(self, bot: Any, chat_id: int, markdown: str) -> None:
        for part in markdown_to_html(markdown):
            await self.send(bot, chat_id, part)

    async def edit(
        self, bot: Any, chat_id: int, message_id: int, html: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """The message's new text (its buttons removed unless `markup`); a text already shown is left."""
        try:
            await with_retry(
                lambda: bot.edit_message_text(
                    html,
                    chat_id=chat_id,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                ),
                "editMessageText",
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    # --- cards --------------------------------------------------------------------------------------

    def _card_key(self, chat_id: int, proposal_id: str) -> str:
        return f"{self.prefix}card:{chat_id}:{proposal_id}"

    @property
    def expiring_key(self) -> str:
        return f"{self.prefix}expiring"

    async def send_card(self, bot: Any, chat_id: int, user: str, proposal: Proposal) -> None:
        html = proposal_card(proposal)
        message_id = await self.send(bot, chat_id, html, keyboard(proposal["proposal_id"]))
        key = self._card_key(chat_id, proposal["proposal_id"])
        member = f"{chat_id}|{user}|{proposal['proposal_id']}"
        expires = _epoch(proposal["expires_at"])
        # The shared expiry index is another slot's key on a cluster: written first, outside the card's
        # transaction (an index entry whose card is missing is passed over by the expiry sweep).
        if expires is not None:
            await self.redis.zadd(self.expiring_key, {member: expires})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"message_id": message_id, "html": html})
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def card(self, chat_id: int, proposal_id: str) -> tuple[int, str] | None:
        stored = await self.redis.hgetall(self._card_key(chat_id, proposal_id))
        if not stored:
            return None
        return int(stored["message_id"]), str(stored["html"])

    async def close_card(
        self, bot: Any, chat_id: int, proposal_id: str, outcome: str, by: str, still_pending: bool = False
    ) -> None:
        """The card edited to show how its proposal ended (buttons gone), or why a press did not apply
        (`still_pending`: the buttons stay)."""
        card = await self.card(chat_id, proposal_id)
        if card is None:
            return
        message_id, html = card
        markup = keyboard(proposal_id) if still_pending else None
        await self.edit(bot, chat_id, message_id, decided_card(None, html, outcome, by), markup)

    # --- runs ---------------------------------------------------------------------------------------

    async def locked(self, user: str, session: str, call: Callable[[], Awaitable[ChatResult]]) -> ChatResult:
        """A facade run behind the session's lease (queued behind a run in progress, in any process). A
        failure is an answer saying so (the thread keeps its last checkpoint), never a silent chat."""
        try:
            token = await self.locks.take(user, session, wait=True)
        except LeaseHeld as held:
            return ChatResult(
                response=f"This session is busy with another run; try again in {held.retry_after} s."
            )
        async with self.locks.keep(user, session, token):
            try:
                return await call()
            except NoPendingApproval:
                raise
            except Exception as exc:
                log.exception("telegram: the run of %s/%s failed", user, session)
                return ChatResult(response=f"The copilot could not answer ({type(exc).__name__}); try again.")

    async def answer(self, bot: Any, chat_id: int, user: str, result: ChatResult) -> None:
        """A run's answer: the model's Markdown as HTML, then the card of a proposal waiting for approval."""
        if result.response.strip():
            await self.send_markdown(bot, chat_id, result.response)
        if result.pending_approval is not None:
            await self.send_card(bot, chat_id, user, result.pending_approval)

    # --- handlers -----------------------------------------------------------------------------------

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            return
        sender = update.effective_user
        user = self.chats.user_for(chat.id, sender.id if sender else None)
        if user is None:
            if chat.id in self.chats.allowed:  # an allowed group, someone else's message
                who = sender.id if sender else "?"
                await self.send(
                    context.bot, chat.id, escape(f"You (Telegram user {who}) are not authorised here.")
                )
            else:
                await self.send(context.bot, chat.id, escape(not_authorised(chat.id)))
            return
        text = (message.text or "").strip()
        if not text:
            return
        text = re.sub(r"^(/\w+)@\w+", r"\1", text)  # /portfolio@copilot_bot in a group
        if text == "/start":
            text = "/help"
        session = session_for(chat.id)
        editing = await self.redis.get(f"{self.prefix}edit:{chat.id}")
        edits = parse_edits(text) if editing else None
        if editing and edits is not None:
            await self.redis.delete(f"{self.prefix}edit:{chat.id}")
            decision = Decision(proposal_id=str(editing), decision="edit", edits=edits, reason="")
            await self.apply(context.bot, chat.id, user, decision, by=_who(sender))
            return
        limit = self.settings.server.max_message_chars
        if len(text) > limit:
            await self.send(
                context.bot, chat.id, escape(f"Message too long ({len(text)} > {limit}); send it in parts.")
            )
            return
        result = await self.locked(user, session, lambda: self.copilot.chat(user, session, text))
        await self.answer(context.bot, chat.id, user, result)

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        chat_id = query.message.chat.id if query.message is not None else None
        user = self.chats.user_for(chat_id, query.from_user.id)
        parsed = parse_callback(query.data)
        if user is None or parsed is None or chat_id is None:
            # Nothing else: no decision, no card change, no account data.
            await with_retry(lambda: query.answer("Not authorised.", show_alert=True), "answerCallbackQuery")
            return
        decision, proposal_id = parsed
        if decision == "edit":
            await self.redis.set(
                f"{self.prefix}edit:{chat_id}", proposal_id, ex=self.settings.risk.proposal_ttl_seconds
            )
            await with_retry(lambda: query.answer("Send the new levels or size."), "answerCallbackQuery")
            await self.send(context.bot, chat_id, EDIT_HELP)
            return
        word = "Approving…" if decision == "approve" else "Rejecting…"
        await with_retry(lambda: query.answer(word), "answerCallbackQuery")
        body = Decision(proposal_id=proposal_id, decision=decision, edits={}, reason="")
        await self.apply(context.bot, chat_id, user, body, by=_who(query.from_user))

    async def apply(self, bot: Any, chat_id: int, user: str, decision: Decision, by: str) -> None:
        """The decision on that exact proposal, once: a card that is no longer the pending proposal (decided,
        superseded, expired) only shows how it ended."""
        session, proposal_id = session_for(chat_id), decision["proposal_id"]
        state = await self.copilot.state(user, session)
        pending = state.pending_approval if state is not None else None
        if pending is not None and pending["proposal_id"] != proposal_id:
            await self.close_card(
                bot, chat_id, proposal_id, "No longer pending: a newer proposal replaced it.", by
            )
            return
        # Noted in Redis before it waits behind a running turn: the press survives this process.
        queued = await self.copilot.queue_decision(user, session, decision)
        ran = False

        async def decide() -> ChatResult:
            nonlocal ran
            ran = True
            return await self.copilot.decide(user, session, decision, queued)

        try:
            result = await self.locked(user, session, decide)
            if not ran:  # refused as busy: not applied, so not applied later either
                await self.copilot.drop_decision(user, session, queued)
        except NoPendingApproval:
            await self.close_card(bot, chat_id, proposal_id, "No longer pending.", by)
            return
        verb = {"approve": "Approve", "reject": "Reject", "edit": "Edit"}[decision["decision"]]
        outcome = outcome_line(result)
        waiting = result.pending_approval
        if decision["decision"] == "edit" and waiting is not None and waiting["proposal_id"] != proposal_id:
            outcome = escape(f"Edited: priced and gated again as {waiting['proposal_id'][:SHORT]} (below).")
        # Not applied (a run that failed, a refused edit): the same proposal still waits, its buttons stay.
        after = await self.copilot.state(user, session)
        left = after.pending_approval if after is not None else None
        still = left is not None and left["proposal_id"] == proposal_id
        by_line = f"{verb} pressed by {by}" + (" (again: nothing new was done)" if result.replayed else "")
        await self.close_card(bot, chat_id, proposal_id, outcome, by_line, still_pending=still)
        if still:
            await self.send_markdown(bot, chat_id, result.response)
        elif not result.replayed:
            await self.answer(bot, chat_id, user, result)
        elif waiting is not None and waiting["proposal_id"] != proposal_id:
            await self.send_card(bot, chat_id, user, waiting)


def _who(user: Any) -> str:
    if user is None:
        return "?"
    return f"@{user.username}" if getattr(user, "username", None) else f"user {user.id}"


def _epoch(iso: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None
