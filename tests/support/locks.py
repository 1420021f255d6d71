"""A run lease that can be watched: the lock tests and the approval tests see a waiter polling a held lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tools.locks import Leases


@dataclass
class WatchedLocks(Leases):
    """Leases that reports each refused acquire with the count so far: a waiter polling a held lock."""

    refusals: int = 0
    on_refused: Callable[[int], object] = lambda refusals: None

    async def acquire(self, user_id: str, session_id: str) -> str | None:
        token = await super().acquire(user_id, session_id)
        if token is None:
            self.refusals += 1
            self.on_refused(self.refusals)
        return token
