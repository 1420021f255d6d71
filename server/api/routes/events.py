"""The trader's live feed: one Server-Sent Events stream per page with quotes, P&L, fills, SL/TP and alerts.

Each stream polls the services once a second for its own user rather than subscribing to a Redis channel the
ticker would publish to. The ledger is the source of truth and every server process reads the same Redis, so
a page on any worker sees a close whichever process (the ticker, a chat turn, a portfolio read) detected it;
the fills stream and the alert book only grow, so their counts are the stream's position (`id:`), and a
reconnect with `Last-Event-ID` replays what happened meanwhile: nothing is lost between two connections, which
a pub/sub message published while no page listened would be. The cost is one portfolio read per open page
per second, which a trader's few tabs can afford. A stream ends after `STREAM_SECONDS` and the page
reconnects, so a server stopping never waits on an idle tab for long.
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

from graph.context import DEFAULT_SYMBOL
from server.api.deps import AccountDep, ServicesDep
from server.api.responses import LIVE
from server.api.runs import SSE_HEADERS
from tools.services import Services

router = APIRouter(prefix="/api", tags=["events"])
log = logging.getLogger("copilot.events")

POLL_SECONDS = 1.0
STREAM_SECONDS = 30.0

EVENTS_DOC = """Server-Sent Events for the current user, about once a second while something changes:
`market` {symbol, bid, ask, quote_time, now} (every pass; `now` is the market clock),
`portfolio` {the /api/portfolio body} when equity, P&L or positions change,
`fill` {ticket, kind: open|sl|tp|manual, symbol, side, lots, price, time, pnl_usd?} for each new fill,
`alert` {the triggered alert}, `problem` {message} when a pass failed (the stream goes on).
Frames carry `id: FILLS-ALERTS`; reconnect with `Last-Event-ID` to receive what happened meanwhile.
The stream ends after about 30 s; reconnect (EventSource does it by itself)."""


@dataclass
class Cursor:
    """How many fills and triggered alerts the client has seen (the stream's position)."""

    fills: int | None = None
    alerts: int | None = None
    portfolio: str = ""
    seen_alerts: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, last_event_id: str | None) -> Cursor:
        try:
            fills, alerts = (int(part) for part in (last_event_id or "").split("-", 1))
        except ValueError:
            return cls()
        return cls(fills=max(0, fills), alerts=max(0, alerts))

    @property
    def id(self) -> str:
        return f"{self.fills or 0}-{self.alerts or 0}"


def frame(name: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    body = json.dumps(data, default=str, ensure_ascii=False)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


async def _fills(services: Services, account: str) -> list[dict[str, str]]:
    fills: Callable[[str], Awaitable[list[dict[str, str]]]] | None = getattr(services.broker, "fills", None)
    return await fills(account) if fills is not None else []


async def one_pass(services: Services, account: str, symbol: str, cursor: Cursor) -> list[bytes]:
    """The frames for what changed since the last pass (the first pass sets the baseline)."""
    out: list[bytes] = []
    quote = await services.market.get_quote(symbol)
    market = {"symbol": symbol, "bid": quote.bid, "ask": quote.ask, "quote_time": quote.time.isoformat()}
    out.append(frame("market", {**market, "now": services.clock.now().isoformat()}))
    portfolio = (await services.broker.get_portfolio(account)).model_dump(mode="json")
    fingerprint = json.dumps(portfolio, sort_keys=True)
    if fingerprint != cursor.portfolio:
        cursor.portfolio = fingerprint
        out.append(frame("portfolio", portfolio))
    fills = await _fills(services, account)
    start = len(fills) if cursor.fills is None else min(cursor.fills, len(fills))
    for index in range(start, len(fills)):
        cursor.fills = index + 1
        out.append(frame("fill", fills[index], cursor.id))
    cursor.fills = len(fills)
    triggered = sorted(
        (a for a in await services.alerts.list_alerts(account) if a.status == "triggered"),
        key=lambda a: (a.triggered_at or a.created_at or quote.time, a.alert_id),
    )
    start = len(triggered) if cursor.alerts is None else min(cursor.alerts, len(triggered))
    for index in range(start, len(triggered)):
        cursor.alerts = index + 1
        out.append(frame("alert", triggered[index].model_dump(mode="json"), cursor.id))
    cursor.alerts = len(triggered)
    return out


@router.get("/events", response_class=StreamingResponse, description=EVENTS_DOC, responses=LIVE)
async def events(
    request: Request,
    account: AccountDep,
    services: ServicesDep,
    symbol: Annotated[str, Query(min_length=1, max_length=20)] = DEFAULT_SYMBOL,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Live quotes, P&L, fills, SL/TP closes and alerts of your account, pushed as they happen."""
    name = symbol.strip().upper()
    if name not in services.specs:
        name = next(iter(sorted(services.specs)))
    cursor = Cursor.parse(last_event_id)

    async def body() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        yield b"retry: 1000\n\n"
        while loop.time() < deadline and not await request.is_disconnected():
            try:
                for chunk in await one_pass(services, account, name, cursor):
                    yield chunk
            except Exception as exc:  # Redis or a service away: say so, keep the stream for when it is back
                log.warning("live events pass failed for %s: %s", account, exc)
                yield frame("problem", {"message": f"live data unavailable: {type(exc).__name__}"})
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
