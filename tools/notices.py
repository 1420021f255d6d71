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

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio.client import Pipeline, Redis

NoticeKind = Literal["fill", "alert"]
MAX_NOTICES = 1000
_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_EARLIEST_MS = 978_307_200_000  # 2001-01-01 UTC


@dataclass(frozen=True)
class Notice:
    id: str  # the stream entry id
    kind: NoticeKind
    data: dict[str, Any]


def notices_key(prefix: str, account_id: str) -> str:
    return f"{prefix}notices:{account_id}"


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
    return _text(newest[0][0]) if newest else "0-0"


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
    values = {_text(k): _text(v) for k, v in fields.items()}
    kind = values.get("kind", "fill")
    return Notice(
        _text(entry_id), "alert" if kind == "alert" else "fill", json.loads(values.get("data", "{}"))
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
