"""The platform's broker with the fills this process observes announced on the account's notice stream.

With the trading service, the fill is committed there, not in our Redis: the only moment this process sees
it is the answer to its own order or close. So that answer is where the notice is written, once per
idempotency key (a Lua script sets the key's marker and appends the notice in one step, so a retried POST
whose first answer was lost, or the same approval sent through two processes, still makes one notice).
What the platform does on its own (SL/TP closes, triggered alerts) is not observed here: the live feed's
`portfolio` frames show a position gone, with no `fill` notice. A crash between the platform's answer and
the script loses that notice (the fill itself is safe at the platform and in the next portfolio).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tools.broker.http import HttpBroker
from tools.broker.ledger import DEFAULT_ACCOUNT
from tools.keys import AccountKeys
from tools.notices import MAX_NOTICES
from tools.schemas import OrderRequest, OrderResult

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from config import Settings
    from tools.protocols import Clock

# KEYS: the key's marker, the notice stream; ARGV: marker lifetime (s), notice JSON, stream TTL (s), MAXLEN.
_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'fill', 'data', ARGV[2])
  if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
  return 1
end
return 0
"""
MARKER_SECONDS = 7 * 24 * 3600


class ObservedHttpBroker(HttpBroker):
    def __init__(
        self, base_url: str, timeout: float, retries: int, *, redis: aioredis.Redis, clock: Clock,
        settings: Settings,
    ) -> None:  # fmt: skip
        super().__init__(base_url, timeout, retries)
        self._redis, self._clock = redis, clock
        self._prefix, self._ttl = settings.redis.prefix, settings.redis.ttl

    async def place_order(self, order: OrderRequest, idempotency_key: str) -> OrderResult:
        result = await super().place_order(order, idempotency_key)
        if result.success and result.ticket is not None:
            fill = {
                "ticket": str(result.ticket), "kind": "open", "symbol": order.symbol, "side": order.side,
                "lots": repr(order.size_lots), "price": repr(result.executed_price),
            }  # fmt: skip
            await self._announce(order.account_id, idempotency_key, fill)
        return result

    async def close_position(
        self, ticket: int, idempotency_key: str, account_id: str | None = None
    ) -> OrderResult:
        result = await super().close_position(ticket, idempotency_key, account_id)
        if result.success:
            fill = {"ticket": str(ticket), "kind": "manual", "price": repr(result.executed_price)}
            await self._announce(account_id, idempotency_key, fill)
        return result

    async def _announce(self, account_id: str | None, key: str, fill: dict[str, str]) -> None:
        account = account_id or self.account_id or DEFAULT_ACCOUNT
        keys = AccountKeys(self._prefix, account)  # marker and stream: one hash tag, one slot
        stream, marker = keys.notices, keys.observed(key)
        data = json.dumps({**fill, "time": self._clock.now().isoformat(), "key": key})
        await self._redis.eval(_ONCE, 2, marker, stream, MARKER_SECONDS, data, self._ttl, MAX_NOTICES)
