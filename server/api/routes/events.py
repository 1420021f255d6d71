"""The trader's live feed: one Server-Sent Events stream per page with quotes, P&L, fills, SL/TP and alerts.

Two parts that fail apart. The account's notices (fills, SL/TP closes, triggered alerts) come from its Redis
Stream (tools/notices.py), written once by whoever commits the event, in any process; the stream is read
with a blocking XREAD from the client's `Last-Event-ID`, and each notice's SSE id is its stream entry id, so a
reconnect gets exactly what it missed, once. The market (the page's symbol) and the portfolio are re-read
about once a second: a symbol whose quote fails (a stale history, no data, an unknown name) says so in one
`market` frame and the notices keep flowing. A stream ends after `STREAM_SECONDS` and the page reconnects,
so a server stopping never waits on an idle tab for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from graph.context import DEFAULT_SYMBOL
from server.api.deps import AccountDep, ServicesDep
from server.api.responses import LIVE
from server.api.runs import SSE_HEADERS
from tools.notices import last_id, read_notices, valid_id
from tools.services import Services

router = APIRouter(prefix="/api", tags=["events"])
log = logging.getLogger("copilot.events")

POLL_SECONDS = 1.0
STREAM_SECONDS = 30.0

EVENTS_DOC = """Server-Sent Events for the current user:
`market` {symbol, available: true, bid, ask, quote_time, now} about once a second, or once
{symbol, available: false, reason, now} when the symbol has no current quote (a stale history, no data, an
unknown symbol) — the account's notices keep flowing either way;
`portfolio` {the /api/portfolio body} when equity, P&L or positions change;
`fill` {ticket, kind: open|sl|tp|manual, symbol, side, lots, price, time, pnl_usd?} for each fill;
`alert` {the triggered alert}; `problem` {message} when reading the account failed (the stream goes on).
Each `fill` and `alert` carries `id:`, its entry id in the account's notice stream; the stream opens with the
current position (`id:` without data). Reconnect with `Last-Event-ID` to receive, once each, the notices
you missed. The stream ends after about 30 s; reconnect (EventSource does it by itself)."""


def frame(name: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, default=str, ensure_ascii=False)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


@dataclass
class Feed:
    """The market and portfolio part of one stream, and what it last said (so it says a change once)."""

    services: Services
    account: str
    symbol: str
    portfolio: str = ""
    market_down: str | None = None  # the reason the last `market` frame gave for no quote
    problem: str | None = None

    async def frames(self) -> list[bytes]:
        return [*await self._market(), *await self._portfolio()]

    async def _market(self) -> list[bytes]:
        now = self.services.clock.now().isoformat()
        try:
            if self.symbol not in self.services.specs:
                known = ", ".join(sorted(self.services.specs))
                raise LookupError(f"unknown symbol '{self.symbol}'; known: {known}")
            quote = await self.services.market.get_quote(self.symbol)
        except Exception as exc:  # this symbol's market only: the account's part goes on
            reason = str(exc) or type(exc).__name__
            if reason == self.market_down:
                return []
            self.market_down = reason
            return [
                frame("market", {"symbol": self.symbol, "available": False, "reason": reason, "now": now})
            ]
        self.market_down = None
        market = {"symbol": self.symbol, "available": True, "bid": quote.bid, "ask": quote.ask}
        return [frame("market", {**market, "quote_time": quote.time.isoformat(), "now": now})]

    async def _portfolio(self) -> list[bytes]:
        try:
            portfolio = (await self.services.broker.get_portfolio(self.account)).model_dump(mode="json")
        except Exception as exc:  # Redis or the trading service away: say so, keep the stream
            return self.failed("portfolio", exc)
        self.problem = None
        fingerprint = json.dumps(portfolio, sort_keys=True)
        if fingerprint == self.portfolio:
            return []
        self.portfolio = fingerprint
        return [frame("portfolio", portfolio)]

    def failed(self, part: str, exc: Exception) -> list[bytes]:
        message = f"live {part} unavailable: {type(exc).__name__}"
        log.warning("live events: %s for %s: %s", message, self.account, exc)
        if message == self.problem:
            return []
        self.problem = message
        return [frame("problem", {"message": message})]


async def notice_frames(
    services: Services, account: str, cursor: str, wait_ms: int
) -> tuple[str, list[bytes]]:
    """The account's notices after `cursor` (waiting up to `wait_ms` for one), and the new cursor."""
    notices = await read_notices(services.redis, services.settings.redis.prefix, account, cursor, wait_ms)
    for notice in notices:
        cursor = notice.id
    return cursor, [frame(n.kind, n.data, n.id) for n in notices]


@router.get("/events", response_class=StreamingResponse, description=EVENTS_DOC, responses=LIVE)
async def events(
    request: Request,
    account: AccountDep,
    services: ServicesDep,
    symbol: Annotated[str, Query(min_length=1, max_length=20)] = DEFAULT_SYMBOL,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Live quotes, P&L, fills, SL/TP closes and alerts of your account, pushed as they happen."""
    feed = Feed(services, account, symbol.strip().upper())
    cursor = valid_id(last_event_id) or await last_id(services.redis, services.settings.redis.prefix, account)

    async def body() -> AsyncIterator[bytes]:
        nonlocal cursor
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        yield f"retry: 1000\nid: {cursor}\n\n".encode()  # the position, for a reconnect before any notice
        next_poll = loop.time()
        while loop.time() < deadline and not await request.is_disconnected():
            if loop.time() >= next_poll:
                for chunk in await feed.frames():
                    yield chunk
                next_poll = loop.time() + POLL_SECONDS
            wait_ms = max(1, int((next_poll - loop.time()) * 1000))
            try:
                cursor, chunks = await notice_frames(services, account, cursor, wait_ms)
            except Exception as exc:  # Redis away: say so (once), retry when the next poll is due
                for chunk in feed.failed("notices", exc):
                    yield chunk
                await asyncio.sleep(max(0.0, next_poll - loop.time()))
                continue
            for chunk in chunks:
                yield chunk

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
