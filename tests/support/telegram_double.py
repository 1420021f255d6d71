"""A Telegram Bot API double over real HTTP, as strict as Telegram where the bot could go wrong.

`https://api.telegram.org/bot<token>/<method>`, parameters as JSON, form data or query string, answers in
Telegram's envelope: `{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`
(429s with `parameters.retry_after`). Methods: getMe, deleteWebhook, getUpdates (long polling with offset /
timeout; a second poller terminates the first with 409, as Telegram does), sendMessage, editMessageText,
editMessageReplyMarkup, answerCallbackQuery. Refused like Telegram: a wrong token (401), an unknown chat,
HTML it cannot parse (unknown tag, unclosed tag, bare `<` or `&`), a text over 4,096 characters after entity
parsing, callback_data over 64 bytes, an unknown or already answered callback query id, an edit that
changes nothing (400), and a 429 with retry_after for the next calls of a method when told to.

Tests drive it from their thread: `say` (a user's message), `press` (a button), `messages`/`calls` (what
the bot did), `wait_for`.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

T = TypeVar("T")
TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code", "pre",
        "blockquote", "tg-emoji"}  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
INT_PARAMS = {"chat_id", "message_id", "offset", "timeout", "limit", "cache_time"}
JSON_PARAMS = {"reply_markup", "allowed_updates", "entities", "link_preview_options"}


def parse_html(text: str) -> str:
    """The text Telegram would show for `text` in parse mode HTML; raises ValueError like its 400."""
    out, stack, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "<":
            match = _TAG.match(text, i)
            name = match.group(2).lower() if match else ""
            if match is None or name not in TAGS:
                raise ValueError(f"can't parse entities: Unsupported start tag {name!r} at byte offset {i}")
            if match.group(1):
                if not stack or stack[-1] != name:
                    raise ValueError(f"can't parse entities: Unexpected end tag at byte offset {i}")
                stack.pop()
            else:
                stack.append(name)
            i = match.end()
        elif char == "&":
            match = _ENTITY.match(text, i)
            if match is None:
                raise ValueError(f"can't parse entities: Unsupported character entity at byte offset {i}")
            out.append(html.unescape(match.group(0)))
            i = match.end()
        elif char == ">":
            raise ValueError(f"can't parse entities: Unexpected '>' at byte offset {i}")
        else:
            out.append(char)
            i += 1
    if stack:
        raise ValueError(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    answer: Any


@dataclass
class BotMessage:
    chat_id: int
    message_id: int
    html: str  # as sent (parse mode HTML)
    text: str  # as shown
    markup: dict[str, Any] | None
    edits: list[str] = field(default_factory=list)  # the texts it was edited to, in order


class TelegramDouble:
    def __init__(self, token: str, bot_id: int = 7000001, username: str = "copilot_test_bot") -> None:
        self.token = token
        self.me = {"id": bot_id, "is_bot": True, "first_name": "Copilot", "username": username}
        self.lock = threading.Lock()
        self.chats: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []
        self.next_update = 1
        self.next_message = 100
        self.messages: dict[tuple[int, int], BotMessage] = {}
        self.sent: list[BotMessage] = []  # every sendMessage, in order
        self.queries: dict[str, dict[str, Any]] = {}  # callback query id -> {answered, text}
        self.calls: list[Call] = []
        self.flood: dict[str, list[int]] = {}
        self.poll_generation = 0
        self.conflicts = 0
        self.log: list[str] = []  # a transcript: what users did and what the bot sent

    # --- the test's side --------------------------------------------------------------------------

    def add_user(self, user_id: int, name: str) -> None:
        with self.lock:
            self.users[user_id] = {"id": user_id, "is_bot": False, "first_name": name, "username": name}
            self.chats[user_id] = {"id": user_id, "type": "private", "first_name": name, "username": name}

    def add_group(self, chat_id: int, title: str) -> None:
        with self.lock:
            self.chats[chat_id] = {"id": chat_id, "type": "supergroup", "title": title}

    def say(self, chat_id: int, text: str, user_id: int | None = None) -> None:
        """A user's message in a chat (private: the user is the chat)."""
        with self.lock:
            sender = self.users[user_id if user_id is not None else chat_id]
            message: dict[str, Any] = {"message_id": self._message_id(), "date": int(time.time()),
                                       "chat": self.chats[chat_id], "from": sender, "text": text}  # fmt: skip
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            self._update({"message": message})
            self.log.append(f"@{sender['username']} in chat {chat_id}: {text}")

    def press(self, chat_id: int, message_id: int, data: str, user_id: int) -> str:
        """A button press on the bot's message; returns the callback query id."""
        with self.lock:
            shown = self.messages.get((chat_id, message_id))
            chat = self.chats[chat_id]
            stub = {"message_id": message_id, "date": int(time.time()), "chat": chat, "text": "?"}
            message = self._message(shown) if shown else stub
            query_id = f"{len(self.queries) + 1}{int(time.time() * 1000) % 100000}"
            self.queries[query_id] = {"answered": False, "text": None, "user_id": user_id}
            sender = self.users[user_id]
            self._update({"callback_query": {"id": query_id, "from": sender, "chat_instance": f"ci{chat_id}",
                                             "data": data, "message": message}})  # fmt: skip
            self.log.append(
                f"@{sender['username']} in chat {chat_id} pressed [{data}] on message {message_id}"
            )
            return query_id

    def flood_next(self, method: str, retry_after: int, times: int = 1) -> None:
        with self.lock:
            self.flood.setdefault(method, []).extend([retry_after] * times)

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        with self.lock:
            return [m for m in self.sent if m.chat_id == chat_id]

    def calls_of(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, check: Callable[[], T | None], timeout: float = 60, what: str = "") -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"the double did not see {what or check} within {timeout} s; log:\n" +
                             "\n".join(self.log[-30:]))  # fmt: skip

    # --- the wire -----------------------------------------------------------------------------------

    def _message_id(self) -> int:
        self.next_message += 1
        return self.next_message

    def _update(self, body: dict[str, Any]) -> None:
        self.updates.append({"update_id": self.next_update, **body})
        self.next_update += 1

    def _message(self, shown: BotMessage) -> dict[str, Any]:
        chat = self.chats[shown.chat_id]
        message = {"message_id": shown.message_id, "date": int(time.time()), "chat": chat, "from": self.me,
                   "text": shown.text}  # fmt: skip
        if shown.markup:
            message["reply_markup"] = shown.markup
        return message

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/bot{token}/{method}", methods=["GET", "POST"])
        async def method(token: str, method: str, request: Request) -> JSONResponse:
            params = await _params(request)
            try:
                if token != self.token:
                    raise ApiError(401, "Unauthorized")
                with self.lock:
                    waits = self.flood.get(method)
                    if waits:
                        raise ApiError(429, f"Too Many Requests: retry after {waits[0]}", waits.pop(0))
                if method == "getUpdates":
                    result = await self._get_updates(params)
                else:
                    with self.lock:
                        result = self._call(method, params)
                body: dict[str, Any] = {"ok": True, "result": result}
                status = 200
            except ApiError as exc:
                status = exc.code
                body = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.retry_after is not None:
                    body["parameters"] = {"retry_after": exc.retry_after}
            with self.lock:
                self.calls.append(Call(method, params, status, body.get("result", body)))
            return JSONResponse(body, status_code=status)

        return app

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, timeout = int(params.get("offset") or 0), float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        with self.lock:
            self.poll_generation += 1
            generation = self.poll_generation
            if offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if generation != self.poll_generation:
                    self.conflicts += 1
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that "
                                   "only one bot instance is running")  # fmt: skip
                ready = [u for u in self.updates if u["update_id"] >= offset][:limit]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.05)

    def _chat(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self.chats:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _text(self, params: dict[str, Any]) -> str:
        text = str(params.get("text") or "")
        if params.get("parse_mode") not in (None, "HTML"):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {params.get('parse_mode')!r} here")
        try:
            shown = parse_html(text) if params.get("parse_mode") == "HTML" else text
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(shown) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return shown

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if not markup:
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not button.get("text"):
                    raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
        return markup if markup.get("inline_keyboard") else None

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return self.me
        if method in ("deleteWebhook", "setMyCommands"):
            return True
        if method == "sendMessage":
            chat_id = self._chat(params)
            shown, markup = self._text(params), self._markup(params)
            sent = BotMessage(chat_id, self._message_id(), str(params["text"]), shown, markup)
            self.messages[(chat_id, sent.message_id)] = sent
            self.sent.append(sent)
            buttons = " ".join(f"[{b['text']}|{b.get('callback_data')}]" for r in (markup or {}).get(
                "inline_keyboard", []) for b in r)  # fmt: skip
            self.log.append(f"bot -> chat {chat_id} (message {sent.message_id}): {sent.html}" +
                            (f"\n    buttons: {buttons}" if buttons else ""))  # fmt: skip
            return self._message(sent)
        if method in ("editMessageText", "editMessageReplyMarkup"):
            chat_id = self._chat(params)
            shown_message = self.messages.get((chat_id, int(params.get("message_id") or 0)))
            if shown_message is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            markup = self._markup(params)
            new_html = str(params["text"]) if method == "editMessageText" else shown_message.html
            new_text = self._text(params) if method == "editMessageText" else shown_message.text
            if new_html == shown_message.html and markup == shown_message.markup:
                raise ApiError(400, "Bad Request: message is not modified: specified new message content "
                               "and reply markup are exactly the same as a current content and reply markup "
                               "of the message")  # fmt: skip
            shown_message.html, shown_message.text, shown_message.markup = new_html, new_text, markup
            shown_message.edits.append(new_html)
            self.log.append(f"bot edits message {shown_message.message_id} in chat {chat_id}: {new_html}")
            return self._message(shown_message)
        if method == "answerCallbackQuery":
            query = self.queries.get(str(params.get("callback_query_id")))
            if query is None or query["answered"]:
                raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID "
                               "is invalid")  # fmt: skip
            if len(str(params.get("text") or "")) > 200:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            query["answered"], query["text"] = True, params.get("text")
            self.log.append(f"bot answers the press {params.get('callback_query_id')}: {params.get('text')}")
            return True
        raise ApiError(404, "Not Found")


async def _params(request: Request) -> dict[str, Any]:
    """The method's parameters however sent: query string, JSON body, urlencoded or multipart form."""
    raw: dict[str, Any] = dict(parse_qsl(request.url.query))
    kind = request.headers.get("content-type", "")
    if "application/json" in kind:
        body = await request.body()
        raw.update(json.loads(body) if body else {})
    elif "application/x-www-form-urlencoded" in kind:
        raw.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    elif "multipart/form-data" in kind:
        head = f"Content-Type: {kind}\r\n\r\n".encode()
        form = BytesParser(policy=default).parsebytes(head + await request.body())
        for part in form.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                raw[str(name)] = part.get_content()
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in INT_PARAMS and isinstance(value, str):
            value = int(value) if re.fullmatch(r"-?[0-9]+", value) else value
        elif key in JSON_PARAMS and isinstance(value, str):
            value = json.loads(value)
        params[key] = value
    return params
