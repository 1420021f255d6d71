"""The trader's live feed: one Server-Sent Events stream per page with quotes, P&L, fills, SL/TP and alerts.

Two parts that fail apart. The account's notices (fills, SL/TP closes, triggered alerts) come from its Redis
Stream (tools/notices.py), written once by whoever commits the event, in any process; one blocking XREAD per
process (tools/notices.NoticeHub) reads the streams of every account with an open page and hands each notice
to each page; a page first catches up from the client's `Last-Event-ID`, and each notice's SSE id is its
stream entry id, so a reconnect gets exactly what it missed, once. The quotes are read about once a second,
once per process for all the pages of a symbol (SharedPolls): a symbol whose quote fails (a stale history,
no data, an unknown name) says so in one `market` frame and the notices keep flowing. A paper account is
read from Redis once per process when a page opens, after its notices or this process's own changes, and
every ACCOUNT_SECONDS; in between its open positions are re-priced each second from those quotes by the
broker's own valuation (PaperBroker.value, what GET /api/portfolio answers). A platform account's
portfolio is asked of its service (once a second with positions). A stream ends after `STREAM_SECONDS`
and the page reconnects, so a server stopping never waits on an idle tab for long.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from server.api.deps import AccountDep, ServicesDep
from server.api.responses import LIVE
from server.api.runs import SSE_HEADERS
from tools.broker.paper import AccountState, PaperBroker
from tools.context import DEFAULT_SYMBOL
from tools.notices import NoticeHub, last_id, valid_id
from tools.schemas import Quote
from tools.services import Services

router = APIRouter(prefix="/api", tags=["events"])
log = logging.getLogger("copilot.events")

POLL_SECONDS = 1.0
# An account changes only by a fill, an SL/TP close or a modify: the first two are notices (which re-read it
# at once), and this process's own changes are counted (PaperBroker.changes). Its open positions are
# re-priced each POLL_SECONDS from the shared quotes; the account itself is re-read from Redis this often
# only as a safety net (a modify made through another worker shows within it).
ACCOUNT_SECONDS = 10.0
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
class SharedPolls:
    """What the pages of one process read about once a second, read once for all of them: a result younger
    than `max_age` seconds is given again (an error too), and pages asking at the same moment share one
    read. Keyed by ("quote", symbol) and ("portfolio", account)."""

    max_age: float
    _results: dict[tuple[str, str], tuple[float, asyncio.Future[Any]]] = field(default_factory=dict)
    # Per account, the last valuation of a held account (Feed._priced): the state, its inputs, the frame.
    valued: dict[str, tuple[AccountState, Any, tuple[dict[str, Any], str]]] = field(default_factory=dict)

    async def get(
        self,
        key: tuple[str, str],
        read: Callable[[], Awaitable[Any]],
        fresh_after: float = 0.0,
        max_age: float | None = None,
    ) -> Any:
        """The shared result, read again if older than `max_age` or begun before `fresh_after` (loop time:
        a page's opening, a notice that changed the account)."""
        now = asyncio.get_running_loop().time()
        held = self._results.get(key)
        age = self.max_age if max_age is None else max_age
        if held is None or now - held[0] >= age or held[0] < fresh_after:
            if len(self._results) > 1000:  # forget what no page asked for lately
                self._results = {k: v for k, v in self._results.items() if now - v[0] < 60}
                self.valued = {a: v for a, v in self.valued.items() if ("account", a) in self._results}
            future = asyncio.ensure_future(read())
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved by a page
            held = self._results[key] = (now, future)
        return await asyncio.shield(held[1])


def live(request: Request, services: Services) -> tuple[NoticeHub, SharedPolls]:
    """The process's notice reader and shared polls (made by the first page)."""
    state = request.app.state
    if getattr(state, "notice_hub", None) is None:
        state.notice_hub = NoticeHub(services.redis, services.settings.redis.prefix)
        state.shared_polls = SharedPolls(POLL_SECONDS * 0.9)
    return state.notice_hub, state.shared_polls


@dataclass
class Feed:
    """The market and portfolio part of one stream, and what it last said (so it says a change once)."""

    services: Services
    account: str
    symbol: str
    polls: SharedPolls
    portfolio: str = ""
    positions: bool = True  # the last portfolio had open positions (its P&L moves with the market)
    opened: bool = False  # the stream's first portfolio was read (that read closes what SL/TP reached)
    market_down: str | None = None  # the reason the last `market` frame gave for no quote
    problem: str | None = None

    async def frames(self, fresh_after: float = 0.0) -> list[bytes]:
        return [*await self._market(), *await self._portfolio(fresh_after)]

    async def _market(self) -> list[bytes]:
        now = self.services.clock.now().isoformat()
        try:
            if self.symbol not in self.services.specs:
                known = ", ".join(sorted(self.services.specs))
                raise LookupError(f"unknown symbol '{self.symbol}'; known: {known}")
            quote = await self._quote(self.symbol)
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

    async def _quote(self, symbol: str) -> Quote:
        """The symbol's quote, read once a second for all the process's pages (and portfolios)."""
        quote: Quote = await self.polls.get(("quote", symbol), lambda: self.services.market.get_quote(symbol))
        return quote

    async def _portfolio(self, fresh_after: float) -> list[bytes]:
        broker = self.services.broker
        try:
            if isinstance(broker, PaperBroker):
                opening, self.opened = not self.opened, True
                portfolio, fingerprint = await self.polls.get(
                    ("priced", self.account), lambda: self._priced(broker, fresh_after, opening), fresh_after
                )
            else:  # the platform's portfolio: only its service can value it
                held = await self.polls.get(
                    ("portfolio", self.account),
                    lambda: broker.get_portfolio(self.account),
                    fresh_after,
                    None if self.positions else ACCOUNT_SECONDS,
                )
                portfolio = held.model_dump(mode="json")
                fingerprint = json.dumps(portfolio, sort_keys=True)
        except Exception as exc:  # Redis or the trading service away: say so, keep the stream
            return self.failed("portfolio", exc)
        self.problem = None
        self.positions = bool(portfolio.get("positions"))
        if fingerprint == self.portfolio:
            return []
        self.portfolio = fingerprint
        return [frame("portfolio", portfolio)]

    async def _priced(
        self, broker: PaperBroker, fresh_after: float, opening: bool
    ) -> tuple[dict[str, Any], str]:
        """The account valued at the shared quotes of its positions' symbols, from the account as last read
        (read again when older than ACCOUNT_SECONDS, after a notice or a page's opening, or when this process
        changed the account since); the same valuation as GET /api/portfolio (PaperBroker.value)."""
        for _ in range(3):
            key = ("account", self.account)
            state: AccountState = await self.polls.get(
                key, lambda: broker.account_state(self.account, sync=opening), fresh_after, ACCOUNT_SECONDS
            )
            quotes = {symbol: await self._quote(symbol) for symbol in state.symbols}
            if state.changes != broker.changes(self.account):
                fresh_after = asyncio.get_running_loop().time()  # this process changed it: read it again
                continue
            # The valuation depends on these only (the day's date: the daily and weekly P&L's starts); the
            # same ones again (a quote that did not move) give the same frame without valuing it again.
            inputs = tuple((s, q.bid, q.ask) for s, q in quotes.items()), self.services.clock.now().date()
            last = self.polls.valued.get(self.account)
            if last is not None and last[0] is state and last[1] == inputs:
                return last[2]
            valued = broker.value(state, quotes)
            if valued is not None:
                portfolio = valued.model_dump(mode="json")
                result = portfolio, json.dumps(portfolio, sort_keys=True)
                self.polls.valued[self.account] = (state, inputs, result)
                return result
            fresh_after = asyncio.get_running_loop().time()  # out of date: read the account again
        raise RuntimeError("the account changed while it was read")

    def failed(self, part: str, exc: Exception) -> list[bytes]:
        message = f"live {part} unavailable: {type(exc).__name__}"
        log.warning("live events: %s for %s: %s", message, self.account, exc)
        if message == self.problem:
            return []
        self.problem = message
        return [frame("problem", {"message": message})]


@router.get("/events", response_class=StreamingResponse, description=EVENTS_DOC, responses=LIVE)
async def events(
    request: Request,
    account: AccountDep,
    services: ServicesDep,
    symbol: Annotated[str, Query(min_length=1, max_length=20)] = DEFAULT_SYMBOL,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Live quotes, P&L, fills, SL/TP closes and alerts of your account, pushed as they happen."""
    hub, polls = live(request, services)
    feed = Feed(services, account, symbol.strip().upper(), polls)
    cursor = valid_id(last_event_id) or await last_id(services.redis, services.settings.redis.prefix, account)

    async def body() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        yield f"retry: 1000\nid: {cursor}\n\n".encode()  # the position, for a reconnect before any notice
        async with hub.subscribe(account, cursor) as page:
            next_poll = fresh_after = loop.time()  # a page opens on the portfolio as it is now
            while loop.time() < deadline and not await request.is_disconnected():
                notices = []
                if loop.time() >= next_poll:
                    for chunk in await feed.frames(fresh_after):
                        yield chunk
                    next_poll = loop.time() + POLL_SECONDS
                    try:  # the missed notices (once; again next poll if Redis was away)
                        if not page.caught_up:
                            notices = await page.catch_up()
                        if hub.failure is not None:  # the reader resumes from where it was: say so only
                            raise hub.failure
                    except Exception as exc:  # Redis away: say so (once)
                        for chunk in feed.failed("notices", exc):
                            yield chunk
                notices += await page.next(next_poll - loop.time())
                for notice in notices:
                    yield frame(notice.kind, notice.data, notice.id)
                if notices:  # a fill or an alert changed the account: its portfolio frame follows at once
                    fresh_after, next_poll = page.received, loop.time()

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
