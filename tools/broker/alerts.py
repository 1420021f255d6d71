"""Price alerts kept in Redis, triggered by later bars (above: high >= price; below: low <= price)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from redis.exceptions import WatchError

from tools.broker.ledger import RedisAccountService, text
from tools.broker.pricing import past
from tools.keys import AccountKeys, alert_accounts_key
from tools.notices import queue_notice
from tools.protocols import UnknownSymbolError
from tools.schemas import Alert, AlertRequest, Bar


class StoredAlert(Alert):
    # Bars opening at or after this time are still to be checked (the quote's time when set).
    checked_until: datetime


class RedisAlerts(RedisAccountService):
    """AlertService over Redis: the account's `alerts` hash (tools/keys.py) maps alert_id -> alert JSON."""

    async def set_alert(
        self, alert: AlertRequest, account_id: str | None = None, key: str | None = None
    ) -> Alert:
        """Create the alert. With `key` its id is derived from the key and it is written only if absent
        (HSETNX), so a request repeated under the same key (a chat turn run again after a crash) creates
        it once and returns the first one."""
        account = account_id or self.account_id
        symbol = self._symbol(alert.symbol)
        quote = await self._market.get_quote(symbol)
        if key:
            alert_id = "alert_" + hashlib.sha256(f"{account}\n{key}".encode()).hexdigest()[:12]
        else:
            alert_id = f"alert_{uuid.uuid4().hex[:12]}"
        stored = StoredAlert(
            alert_id=alert_id,
            symbol=symbol,
            condition=alert.condition,
            price=alert.price,
            message=alert.message,
            created_at=self._clock.now(),
            checked_until=quote.time,  # the bar behind the current quote is already history
        )
        if not await self._redis.hsetnx(self._key(account), stored.alert_id, stored.model_dump_json()):
            first = await self._redis.hget(self._key(account), stored.alert_id)
            return _public(StoredAlert.model_validate_json(text(first)))
        await self._redis.sadd(self._accounts_key(), account)
        return _public(stored)

    async def list_alerts(self, account_id: str | None = None) -> list[Alert]:
        """Every alert of the account (active and triggered), oldest first, after checking new bars."""
        account = account_id or self.account_id
        await self.check(account)
        raw = await self._redis.hgetall(self._key(account))
        alerts = [StoredAlert.model_validate_json(text(v)) for v in raw.values()]
        return [
            _public(a) for a in sorted(alerts, key=lambda a: (a.created_at or a.checked_until, a.alert_id))
        ]

    async def check(self, account_id: str | None = None) -> list[Alert]:
        """Trigger active alerts whose level was reached by bars since they were last checked.

        Returns the alerts triggered by this call. account_id=None checks every account (background ticker).
        """
        if account_id is None:
            fired: list[Alert] = []
            for account in sorted(text(a) for a in await self._redis.smembers(self._accounts_key())):
                fired += await self.check(account)
            return fired
        keys = AccountKeys(self._prefix, account_id)
        key, notices = keys.alerts, keys.notices  # one hash tag: one slot on a cluster
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH: two checkers (or a set_alert meanwhile) cannot double-trigger or lose an update.
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    active = [StoredAlert.model_validate_json(text(v)) for v in raw.values()]
                    updates = await self._evaluate([a for a in active if a.status == "active"])
                    pipe.multi()
                    for alert in updates:
                        pipe.hset(key, alert.alert_id, alert.model_dump_json())
                        if alert.status == "triggered":  # its notice commits with the trigger, once
                            notice = _public(alert).model_dump(mode="json")
                            queue_notice(pipe, notices, self._notices_ttl, "alert", notice)
                    await pipe.execute()
                    return [_public(a) for a in updates if a.status == "triggered"]
                except WatchError:
                    continue

    async def _evaluate(self, active: list[StoredAlert]) -> list[StoredAlert]:
        cache: dict[tuple[str, datetime], list[Bar]] = {}
        updates = []
        for alert in active:
            since = (alert.symbol, alert.checked_until)
            if since not in cache:
                cache[since] = await self._market.bars_since(*since)
            bars = [b for b in cache[since] if b.time >= alert.checked_until]
            if not bars:
                continue
            hit = _first_cross(alert, bars)
            if hit is None:
                updates.append(alert.model_copy(update={"checked_until": past(bars[-1])}))
            else:
                bar, price = hit
                change = {"status": "triggered", "triggered_at": bar.time, "triggered_price": price}
                updates.append(alert.model_copy(update={**change, "checked_until": past(bar)}))
        return updates

    def _symbol(self, symbol: str) -> str:
        wanted = symbol.strip().upper()
        known = {s.upper() for s in self._market.symbols()}
        if wanted not in known:
            raise UnknownSymbolError(
                f"unknown symbol '{symbol}'; known: {', '.join(sorted(known)) or '(none)'}"
            )
        return wanted

    def _key(self, account: str) -> str:
        return AccountKeys(self._prefix, account).alerts

    def _accounts_key(self) -> str:
        return alert_accounts_key(self._prefix)


def _first_cross(alert: StoredAlert, bars: list[Bar]) -> tuple[Bar, float] | None:
    """The first bar reaching the level, and the price it was reached at (the open when it gapped through)."""
    for bar in bars:
        if alert.condition == "above" and bar.high >= alert.price:
            return bar, max(alert.price, bar.open)
        if alert.condition == "below" and bar.low <= alert.price:
            return bar, min(alert.price, bar.open)
    return None


def _public(alert: StoredAlert) -> Alert:
    return Alert.model_validate(alert.model_dump(exclude={"checked_until"}))
