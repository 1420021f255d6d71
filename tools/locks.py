"""Redis locks with an owner token, across server processes: one run per session, one order per account."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

# Delete / extend only when the lock still holds our token, so a run that outlived its expiry never frees
# (or prolongs) the lock a newer run took over.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class SessionBusy(Exception):
    """Another run holds the session's lock."""

    def __init__(self) -> None:
        super().__init__("a run is already in progress for this session")


@dataclass
class RunLocks:
    """`{prefix}lock:{user}:{session}` taken with SET NX PX; a crashed worker's lock expires by itself."""

    redis: aioredis.Redis
    prefix: str
    expiry_seconds: int
    wait: bool = False
    poll_seconds: float = 0.1

    def key(self, user_id: str, session_id: str) -> str:
        return f"{self.prefix}lock:{user_id}:{session_id}"

    async def acquire(self, user_id: str, session_id: str) -> str | None:
        """The owner token, or None when the session is busy."""
        token = secrets.token_hex(16)
        ok = await self.redis.set(
            self.key(user_id, session_id), token, nx=True, px=self.expiry_seconds * 1000
        )
        return token if ok else None

    async def release(self, user_id: str, session_id: str, token: str) -> bool:
        released = await self.redis.eval(_RELEASE, 1, self.key(user_id, session_id), token)
        return bool(released)

    async def extend(self, user_id: str, session_id: str, token: str) -> bool:
        ms = str(self.expiry_seconds * 1000)
        extended = await self.redis.eval(_EXTEND, 1, self.key(user_id, session_id), token, ms)
        return bool(extended)

    async def _take(self, user_id: str, session_id: str) -> str:
        token = await self.acquire(user_id, session_id)
        if token is not None:
            return token
        if not self.wait:
            raise SessionBusy()
        # "wait" policy: queue behind the running turn, but never longer than a lock can live.
        deadline = asyncio.get_running_loop().time() + self.expiry_seconds
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(self.poll_seconds)
            token = await self.acquire(user_id, session_id)
            if token is not None:
                return token
        raise SessionBusy()

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str, session_id: str) -> AsyncIterator[str]:
        """Hold the session's lock for a block; it is refreshed while held, so a slow model keeps it."""
        token = await self._take(user_id, session_id)
        refresher = asyncio.create_task(self._refresh(user_id, session_id, token))
        try:
            yield token
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await self.release(user_id, session_id, token)

    async def _refresh(self, user_id: str, session_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.expiry_seconds / 3)
            if not await self.extend(user_id, session_id, token):
                return
