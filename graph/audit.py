"""Append-only audit trail of proposals, verdicts, decisions and executions (a Redis stream)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

import redis.asyncio as aioredis
from pydantic import JsonValue

# Bounded so a busy desk cannot grow Redis without limit; ~ lets Redis trim cheaply.
MAX_ENTRIES = 100_000


class AuditEntry(TypedDict):
    """One entry as read back: what happened (`kind`), to whom, when (`at`, ISO UTC), the stream entry id,
    and what was recorded (a JSON object: the proposal, verdict, decision or outcome)."""

    kind: str
    user_id: str
    thread_id: str
    at: str
    data: dict[str, JsonValue]
    id: str


class AuditTrail:
    """One stream `{prefix}audit`; each entry names the user, the thread and what happened."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.key = f"{prefix}audit"

    async def append(self, kind: str, user_id: str, thread_id: str, data: Mapping[str, object]) -> str:
        """Record `data` (anything JSON can hold; other values are written as their str()); the entry id."""
        fields = {
            "kind": kind,
            "user_id": user_id,
            "thread_id": thread_id,
            "at": datetime.now(UTC).isoformat(),
            "data": json.dumps(data, default=str, sort_keys=True),
        }
        entry_id = await self.redis.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]
        return entry_id if isinstance(entry_id, str) else entry_id.decode()

    async def entries(self, count: int = 100, thread_id: str | None = None) -> list[AuditEntry]:
        """The latest `count` entries, oldest first (optionally only one thread's)."""
        raw: list[Any] = list(await self.redis.xrevrange(self.key, count=count) or [])
        out: list[AuditEntry] = []
        for entry_id, fields in reversed(raw):
            item = {_s(k): _s(v) for k, v in (fields or {}).items()}
            if thread_id is not None and item.get("thread_id") != thread_id:
                continue
            out.append(
                AuditEntry(
                    kind=item.get("kind", ""),
                    user_id=item.get("user_id", ""),
                    thread_id=item.get("thread_id", ""),
                    at=item.get("at", ""),
                    data=json.loads(item.get("data", "{}")),
                    id=_s(entry_id),
                )
            )
        return out


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
