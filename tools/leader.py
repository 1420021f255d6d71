"""One holder per deployment of a named job (the ticker, the Telegram poller), by a Redis lease.

Every worker runs `Leader(...).run(work)`; one of them holds the key (SET NX PX with a random token) and runs
`work`, the others wait as standbys and try again every third of the lease. The holder renews the lease every
third of it with a compare-and-renew script; a holder killed with kill -9 stops renewing, the key expires, and
a standby takes over within one lease. A holder that loses the lease (a stalled loop, Redis restarted without
the key) cancels its work at once, so two holders never run the job side by side for longer than one renewal
period (and the jobs it holds are safe to overlap briefly: each change is one Redis transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

log = logging.getLogger("copilot.leader")

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class Leader:
    """One holder per deployment of a named job (the ticker, the Telegram poller), by a Redis lease."""

    redis: Redis  # redis.asyncio client
    key: str  # e.g. f"{settings.redis.key_prefix}leader:ticker" / "...leader:telegram"
    lease_seconds: float  # e.g. settings value, default 10
    name: str = ""  # for logs
    # Random, prefixed with who holds it (host:pid) so an operator reading the key sees which worker leads.
    _token: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}",
        init=False,
        repr=False,
    )
    _leading: bool = field(default=False, init=False, repr=False)

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def _lease_ms(self) -> int:
        return max(int(self.lease_seconds * 1000), 1)

    @property
    def _label(self) -> str:
        return self.name or self.key

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Forever: take the lease with SET NX PX (a random token); while held, run `work()` as a task and
        renew every lease/3 with a compare-and-renew Lua script; when the renewal fails (lease lost), cancel
        the work at once; if the work raises, log it and start it again while still leading; while not held,
        retry every lease/3. When run() is cancelled: cancel the work and release the lease
        (compare-and-delete)."""
        period = self.lease_seconds / 3
        task: asyncio.Task[None] | None = None
        try:
            while True:
                if not self._leading:
                    try:
                        self._leading = bool(
                            await self.redis.set(self.key, self._token, nx=True, px=self._lease_ms)
                        )
                    except Exception as exc:  # Redis away: try again next period
                        log.warning("%s: could not take the lease: %s", self._label, exc)
                    if self._leading:
                        log.info("%s: leading (lease %s s)", self._label, self.lease_seconds)
                else:
                    try:
                        renewed = await self.redis.eval(_RENEW, 1, self.key, self._token, str(self._lease_ms))
                    except Exception as exc:  # Redis away: the lease may still hold; retry next period
                        log.warning("%s: could not renew the lease: %s", self._label, exc)
                        renewed = 1
                    if not renewed:
                        log.warning("%s: lease lost; stopping the work", self._label)
                        self._leading = False
                        await _cancel(task)
                        task = None
                if self._leading and (task is None or task.done()):
                    if task is not None and not task.cancelled() and task.exception() is not None:
                        failure = task.exception()
                        log.error("%s: work failed; starting it again", self._label, exc_info=failure)
                    task = asyncio.create_task(_call(work))
                await asyncio.sleep(period)
        finally:
            await _cancel(task)
            if self._leading:
                self._leading = False
                with contextlib.suppress(Exception):  # Redis away: the lease expires by itself
                    await self.redis.eval(_RELEASE, 1, self.key, self._token)


async def _call(work: Callable[[], Awaitable[None]]) -> None:
    await work()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
