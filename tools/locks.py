"""Redis leases with an owner token, across server processes: one run per session, one order per account.

A lease is short (a few seconds) and renewed while its holder is alive, so a process killed mid-run frees
the session (or the account) within one lease instead of leaving it locked for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from tools.keys import SessionKeys

log = logging.getLogger("copilot.locks")

# Delete / renew only when the lease still holds our token, so a holder that outlived its lease never frees
# (or prolongs) the lease a newer holder took over. Renewal also consumes a cancel request (answer 2).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('DEL', KEYS[2]) == 1 then return 2 end
return 1
"""
# A cancel request is recorded only while somebody holds the lease.
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return 1
"""


class LeaseHeld(Exception):
    """Another holder has the lease (a run of the session, an order of the account); `retry_after` is when
    it ends at the latest unless renewed."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(f"held by another holder for up to {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Leases:
    """Leases named `{prefix}{sess:<owner>:<name>}:lease` (a user and session, or "broker" and an account; the
    cancel request beside it shares the hash tag: tools/keys.py) taken with SET NX PX and renewed every third
    of the lease."""

    redis: aioredis.Redis
    prefix: str
    lease_seconds: float
    wait: bool = False
    wait_seconds: float = 120.0
    poll_seconds: float = 0.1

    def key(self, user_id: str, session_id: str) -> str:
        return SessionKeys(self.prefix, f"{user_id}:{session_id}").lease

    def cancel_key(self, user_id: str, session_id: str) -> str:
        return SessionKeys(self.prefix, f"{user_id}:{session_id}").cancel

    @property
    def _lease_ms(self) -> int:
        return max(int(self.lease_seconds * 1000), 1)

    async def acquire(self, user_id: str, session_id: str) -> str | None:
        """The owner token, or None when the session is busy."""
        token = secrets.token_hex(16)
        ok = await self.redis.set(self.key(user_id, session_id), token, nx=True, px=self._lease_ms)
        return token if ok else None

    async def release(self, user_id: str, session_id: str, token: str) -> bool:
        released = await self.redis.eval(_RELEASE, 1, self.key(user_id, session_id), token)
        return bool(released)

    async def renew(self, user_id: str, session_id: str, token: str) -> int:
        """0: the lease is lost; 1: renewed; 2: renewed, and somebody asked this run to stop."""
        keys = (self.key(user_id, session_id), self.cancel_key(user_id, session_id))
        return int(await self.redis.eval(_RENEW, 2, *keys, token, str(self._lease_ms)))

    async def request_cancel(self, user_id: str, session_id: str) -> bool:
        """Ask the holder (in whichever process) to stop its run; False when nothing holds the session."""
        keys = (self.key(user_id, session_id), self.cancel_key(user_id, session_id))
        return bool(await self.redis.eval(_CANCEL, 2, *keys, str(self._lease_ms * 2)))

    async def busy_for(self, user_id: str, session_id: str) -> int:
        """Seconds until the current lease ends unless renewed (at least 1): what a 409 says to wait."""
        ms = int(await self.redis.pttl(self.key(user_id, session_id)))
        return max(1, math.ceil(ms / 1000)) if ms > 0 else 1

    async def take(self, user_id: str, session_id: str, wait: bool | None = None) -> str:
        """The owner token; `wait` (default: the policy) queues behind the current holder for at most
        wait_seconds, else LeaseHeld at once."""
        token = await self.acquire(user_id, session_id)
        if token is not None:
            return token
        if self.wait if wait is None else wait:  # queue behind the running turn
            deadline = asyncio.get_running_loop().time() + self.wait_seconds
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(self.poll_seconds)
                token = await self.acquire(user_id, session_id)
                if token is not None:
                    return token
        raise LeaseHeld(await self.busy_for(user_id, session_id))

    @contextlib.asynccontextmanager
    async def keep(
        self, user_id: str, session_id: str, token: str, on_cancel: asyncio.Task[object] | None = None
    ) -> AsyncIterator[str]:
        """Renew a taken lease while the block runs, release it at the end. A cancel request cancels
        `on_cancel` (the run's task)."""
        renewer = asyncio.create_task(self._renew_loop(user_id, session_id, token, on_cancel))
        try:
            yield token
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.release(user_id, session_id, token)
            except Exception as exc:  # Redis away: the lease expires by itself within one period
                log.warning("could not release %s: %s", self.key(user_id, session_id), exc)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str, session_id: str) -> AsyncIterator[str]:
        """Take the lease (or raise LeaseHeld) and keep it for the block."""
        token = await self.take(user_id, session_id)
        async with self.keep(user_id, session_id, token) as held:
            yield held

    async def _renew_loop(
        self, user_id: str, session_id: str, token: str, on_cancel: asyncio.Task[object] | None
    ) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                answer = await self.renew(user_id, session_id, token)
            except Exception as exc:  # Redis restarting: try again next period
                log.warning("could not renew %s: %s", self.key(user_id, session_id), exc)
                continue
            if answer == 0:  # expired meanwhile (a stalled loop, a Redis restart): take it back if free
                key = self.key(user_id, session_id)
                if not await self.redis.set(key, token, nx=True, px=self._lease_ms):
                    log.warning("lease %s lost to another holder while its run was alive", key)
                    return
            if answer == 2 and on_cancel is not None:
                on_cancel.cancel()
