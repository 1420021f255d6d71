"""Calls to the Bot API with retries: Telegram's 429 (`retry_after`) and network errors, with backoff; and a
log filter that keeps the bot token out of every log line (httpx logs each request's URL, which holds it)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger("copilot.telegram")
T = TypeVar("T")

ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
MAX_WAIT_SECONDS = 60.0


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # an int until PTB's next major version (a timedelta then): both read
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def with_retry(call: Callable[[], Awaitable[T]], what: str, attempts: int = ATTEMPTS) -> T:
    """`call()` again after a 429 (waiting what Telegram said) or a network error (0.5, 1, 2, 4 s), at most
    `attempts` times; a 400/401/403 is not retried (the same request would fail the same way)."""
    delay = BACKOFF_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == attempts:
                raise
            wait = min(retry_seconds(exc), MAX_WAIT_SECONDS)
            log.warning("telegram %s: flood control, retrying in %.1f s", what, wait)
            await asyncio.sleep(wait)
        except (BadRequest, Forbidden, InvalidToken):
            raise
        except NetworkError as exc:  # includes TimedOut
            if attempt == attempts:
                raise
            log.warning("telegram %s: %s; retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class RedactToken(logging.Filter):
    """Replaces the token in a record's message (and drops its args) wherever it would appear."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg, record.args = message.replace(self.token, "<token>"), None
        return True


# The loggers that can print a request URL or its parameters (httpx at INFO, python-telegram-bot at DEBUG).
TOKEN_LOGGERS = ("httpx", "httpcore", "telegram", "telegram.Bot", "telegram.ext", "telegram.ext.ExtBot",
                 "telegram.ext.Updater", "telegram.ext.Application", "telegram.request",
                 "telegram.request.HTTPXRequest", "telegram.request.BaseRequest", "telegram.HTTPXRequest",
                 "telegram.BaseRequest")  # fmt: skip


def redact_token_in_logs(token: str) -> RedactToken:
    """Install the filter on the loggers that could print the token; returns it (to remove it later)."""
    redact = RedactToken(token)
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactToken) and f.token == token for f in logger.filters):
            logger.addFilter(redact)
    return redact
