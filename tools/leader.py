"""One holder per deployment of a named job (the ticker, the Telegram poller), by a Redis lease.

Every worker runs `Leader.run(work)`; the one that takes the lease runs `work()`, the others wait. The lease
is short and renewed every third of it, so a holder killed with SIGKILL frees the job within one lease: its
key expires and a standby takes it at its next try (every third of a lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

log = logging.getLogger("copilot.leader")

# Renew / delete only while the key still holds our token (a holder that outlived its lease never prolongs
# or frees the lease a newer holder took).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Leader:
    """One holder per deployment of a named job (the ticker, the Telegram poller), by a Redis lease."""

    redis: Redis  # redis.asyncio client
    key: str  # e.g. f"{settings.redis.prefix}leader:telegram"
    lease_seconds: float = 10.0
    name: str = ""  # for logs
    _token: str = field(default_factory=lambda: secrets.token_hex(16), init=False, repr=False)
    _leading: bool = field(default=False, init=False, repr=False)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def _lease_ms(self) -> int:
        return max(int(self.lease_seconds * 1000), 1)

    async def _take(self) -> bool:
        return bool(await self.redis.set(self.key, self._token, nx=True, px=self._lease_ms))

    async def _renew(self) -> bool:
        return bool(await self.redis.eval(_RENEW, 1, self.key, self._token, str(self._lease_ms)))

    async def _release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self._token)

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Forever: take the lease with SET NX PX (a random token); while held, run `work()` as a task and
        renew every lease/3 with a compare-and-renew Lua script; when the renewal fails (lease lost), cancel
        the work at once; if the work raises, log it and start it again while still leading; while not held,
        retry every lease/3. When run() is cancelled: cancel the work and release the lease."""
        period = self.lease_seconds / 3
        task: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    if not self._leading:
                        self._leading = await self._take()
                        if self._leading:
                            log.info("%s: leading (%s)", self.name or self.key, self.key)
                    else:
                        self._leading = await self._renew()
                        if not self._leading:
                            log.warning("%s: lease lost; stopping the work", self.name or self.key)
                except Exception as exc:  # Redis away: the lease cannot be proven held, so stop the work
                    log.warning("%s: lease check failed: %s", self.name or self.key, exc)
                    self._leading = False
                if self._leading and (task is None or task.done()):
                    if task is not None:
                        _report(task, self.name or self.key)
                    task = asyncio.create_task(_call(work))
                elif not self._leading and task is not None:
                    await _cancel(task)
                    task = None
                await asyncio.sleep(period)
        finally:
            if task is not None:
                await _cancel(task)
            if self._leading:
                self._leading = False
                with contextlib.suppress(Exception):  # Redis away: the key expires within one lease
                    await asyncio.shield(self._release())


async def _call(work: Callable[[], Awaitable[None]]) -> None:
    await work()


def _report(task: asyncio.Task[None], name: str) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s: the work failed; starting it again", name, exc_info=exc)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
