"""An account's notices (fills, SL/TP closes, triggered alerts): one Redis Stream per account, appended once.

A notice is written by the code that commits the event, inside the same MULTI/EXEC (the paper ledger's order
or SL/TP transaction, the alert book's trigger transaction), so Redis holds both or neither. The stream entry
id (`<ms>-<seq>`, assigned by Redis) is the notice's id everywhere: the SSE `id:` of `/api/events`, the
`Last-Event-ID` a client reconnects with, and the page's de-duplication key. Ids only grow, also across
server processes (one Redis assigns them), so "everything after id X" is exact: nothing twice, nothing lost.

The stream is bounded (`MAXLEN ~`, about `MAX_NOTICES` entries) and, when `redis.ttl` is set, expires that
long after its last notice: notices are for live delivery; the ledger (`/api/trades`) keeps the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio.client import Pipeline, Redis

from tools.keys import account_of_notices, notices_key
from tools.redis_clients import is_cluster, reply_text

NoticeKind = Literal["fill", "alert"]
MAX_NOTICES = 1000
_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_EARLIEST_MS = 978_307_200_000  # 2001-01-01 UTC


@dataclass(frozen=True)
class Notice:
    id: str  # the stream entry id
    kind: NoticeKind
    data: dict[str, Any]


def queue_notice(pipe: Pipeline, key: str, ttl_seconds: int, kind: NoticeKind, data: Any) -> None:
    """Queue one notice on the stream `key` (after MULTI: it is applied with the event it announces)."""
    body = json.dumps(data, default=str, ensure_ascii=False)
    pipe.xadd(key, {"kind": kind, "data": body}, maxlen=MAX_NOTICES, approximate=True)
    if ttl_seconds > 0:
        pipe.expire(key, ttl_seconds)


def valid_id(value: str | None) -> str | None:
    """A client's Last-Event-ID when it is a stream entry id, else None. Redis stamps entries with its clock
    in ms, so an id before 2001 is of another scheme (the fills-alerts counts of earlier versions), except
    "0-0": the position of an account with no notice yet (everything from the first one on)."""
    value = (value or "").strip()
    if value == "0-0":
        return value
    if not _ID.match(value) or int(value.split("-", 1)[0]) < _EARLIEST_MS:
        return None
    return value


async def last_id(redis: Redis, prefix: str, account_id: str) -> str:
    """The id of the account's newest notice ("0-0" when there is none): where a fresh stream starts."""
    newest = await redis.xrevrange(notices_key(prefix, account_id), count=1)
    return reply_text(newest[0][0]) if newest else "0-0"


async def read_notices(
    redis: Redis, prefix: str, account_id: str, after: str, block_ms: int | None, count: int = 100
) -> list[Notice]:
    """Notices after id `after`, oldest first; with `block_ms`, waits up to that long for the first one."""
    key = notices_key(prefix, account_id)
    reply: Any = await redis.xread({key: after}, count=count, block=block_ms)
    # One key was asked for: RESP2 answers [[key, entries]] (the project's clients speak RESP2).
    entries = reply[0][1] if reply else []
    return [_notice(entry_id, fields) for entry_id, fields in entries if fields]


def _notice(entry_id: Any, fields: dict[Any, Any]) -> Notice:
    values = {reply_text(k): reply_text(v) for k, v in fields.items()}
    kind = values.get("kind", "fill")
    return Notice(
        reply_text(entry_id), "alert" if kind == "alert" else "fill", json.loads(values.get("data", "{}"))
    )


def _by_slot(redis: Any, streams: dict[Any, Any]) -> list[dict[Any, Any]]:
    """The streams grouped by Redis Cluster slot on a cluster client, else all together."""
    if not is_cluster(redis) or len(streams) < 2:
        return [streams]
    from redis.crc import key_slot

    groups: dict[int, dict[Any, Any]] = {}
    for key, cursor in streams.items():
        groups.setdefault(key_slot(str(key).encode()), {})[key] = cursor
    return list(groups.values())


def _after(entry_id: str, cursor: str) -> bool:
    """Stream ids compare as (ms, seq) pairs."""
    a, b = entry_id.split("-", 1), cursor.split("-", 1)
    return (int(a[0]), int(a[1])) > (int(b[0]), int(b[1]))


@dataclass(eq=False)
class Subscription:
    """One open page's share of a NoticeHub: the notices of its account, newest after `cursor`, once."""

    hub: NoticeHub
    account: str
    cursor: str
    queue: asyncio.Queue[Notice] = field(default_factory=asyncio.Queue)
    caught_up: bool = False
    received: float = 0.0  # loop time of the latest notice handed to this page

    async def catch_up(self) -> list[Notice]:
        """What the stream holds after `cursor` now (no wait): a reconnect's missed notices. Raises when
        Redis is away (call again later: `caught_up` stays False)."""
        missed: list[Notice] = []
        self.received = asyncio.get_running_loop().time()
        while True:
            batch = await read_notices(self.hub.redis, self.hub.prefix, self.account, self.cursor, None)
            missed += self._take(batch)
            if len(batch) < 100:
                self.caught_up = True
                return missed

    async def next(self, wait_seconds: float) -> list[Notice]:
        """The notices the hub's reader delivered (waiting up to `wait_seconds` for the first), newer than the
        cursor only: a notice the catch-up already gave is not given again."""
        try:
            first = await asyncio.wait_for(self.queue.get(), max(wait_seconds, 0.001))
        except TimeoutError:
            return []
        batch = [first]
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return self._take(batch)

    def _take(self, notices: list[Notice]) -> list[Notice]:
        fresh = []
        for notice in notices:
            if _after(notice.id, self.cursor):
                fresh.append(notice)
                self.cursor = notice.id
        return fresh


@dataclass
class NoticeHub:
    """One blocking XREAD per process over the notice streams of every account with an open page, fanned out
    to each page's queue: 100 pages cost one reader, not 100 (README "Running at scale").

    The reader starts at the stream's newest id when an account's first page subscribes; a page catches up
    from its own cursor (its Last-Event-ID) after subscribing, and a page drops what is not newer than its
    cursor, so the overlap of the two is given once. When the set of accounts changes the blocked read is
    cancelled and started again over the new set."""

    redis: Redis
    prefix: str
    # Below the client's socket timeout (redis-py's default is 5 s, and a blocked read longer than it fails).
    block_ms: int = 2000
    failure: Exception | None = None  # the reader's last error, None once it reads again
    _pages: dict[str, set[Subscription]] = field(default_factory=dict)
    _positions: dict[str, str] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, account: str, cursor: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(self, account, cursor)
        self._pages.setdefault(account, set()).add(subscription)
        try:
            if account not in self._positions:
                with contextlib.suppress(Exception):  # Redis away: the reader retries
                    await self._start_at_newest(account)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())
            yield subscription
        finally:
            pages = self._pages.get(account, set())
            pages.discard(subscription)
            if not pages:
                self._pages.pop(account, None)
                self._positions.pop(account, None)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def pages(self) -> int:
        return sum(len(p) for p in self._pages.values())

    async def _start_at_newest(self, account: str) -> None:
        newest = await last_id(self.redis, self.prefix, account)
        if account in self._pages and account not in self._positions:
            self._positions[account] = newest
            self._changed.set()

    async def _read(self) -> None:
        while self._pages:
            try:
                for account in [a for a in self._pages if a not in self._positions]:
                    await self._start_at_newest(account)
                streams: dict[Any, Any] = {notices_key(self.prefix, a): p for a, p in self._positions.items()}
                self._changed.clear()
                if not streams:
                    await asyncio.sleep(0.1)
                    continue
                # One blocking XREAD per Redis Cluster slot (one in all on a single Redis): an XREAD's keys
                # must share a slot there. The first answer is delivered, the other reads are dropped and
                # made again from the same ids.
                reads = [
                    asyncio.ensure_future(self.redis.xread(group, count=100, block=self.block_ms))
                    for group in _by_slot(self.redis, streams)
                ]
                changed = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait({*reads, changed}, return_when=asyncio.FIRST_COMPLETED)
                except BaseException:  # the hub closes: drop the blocked reads with it
                    for read in reads:
                        read.cancel()
                    raise
                finally:
                    changed.cancel()
                done = [read for read in reads if read.done()]
                for read in reads:  # an account came or went, or another slot answered: read again
                    if not read.done():
                        read.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await read
                for read in done:
                    self._deliver(read.result())
                self.failure = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: pages say so; read again in a moment from the same ids
                self.failure = exc
                await asyncio.sleep(1.0)

    def _deliver(self, reply: Any) -> None:
        for key, entries in reply or []:
            account = account_of_notices(self.prefix, reply_text(key))
            for entry_id, fields in entries:
                if account in self._positions:
                    self._positions[account] = reply_text(entry_id)
                if not fields:
                    continue
                notice = _notice(entry_id, fields)
                now = asyncio.get_running_loop().time()
                for page in self._pages.get(account, ()):
                    page.received = now
                    page.queue.put_nowait(notice)
