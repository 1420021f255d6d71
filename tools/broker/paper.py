"""The paper broker: market orders filled at replay prices, SL/TP from later bars, all state in Redis.

Every state change runs as one optimistic Redis transaction (WATCH the account's keys and the idempotency
key, read, decide in Python, MULTI/EXEC). A concurrent change, from this process or another, aborts the
EXEC and the whole decision is re-made on fresh state, so the same idempotency key can never apply twice
and a stop-loss can never close a position twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from redis.exceptions import WatchError

from tools.broker import ledger, pricing
from tools.broker.ledger import (
    DEFAULT_ACCOUNT,
    Book,
    ClosedTrade,
    Effects,
    Keys,
    OpenPosition,
    OrderRecord,
    RedisAccountService,
    text,
)
from tools.protocols import Clock, MarketData, ServiceError, UnknownSymbolError
from tools.schemas import Bar, OrderRequest, OrderResult, Portfolio, Position, Quote, SymbolSpec

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from config import Settings

# A decision gets the book read under WATCH and a fresh ticket number (0 unless the op opens a position).
Decide = Callable[[Book, int], tuple[OrderResult, Effects]]


class PaperBroker(RedisAccountService):
    """Broker protocol over a Redis-backed paper account (accounts are created on first use)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        market: MarketData,
        clock: Clock,
        specs: dict[str, SymbolSpec],
        settings: Settings,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> None:
        super().__init__(redis, market, clock, settings, account_id)
        self._specs = specs
        self._cfg = settings.broker
        self._changes: dict[str, int] = {}

    # ---- public API -------------------------------------------------------------------------------

    async def place_order(self, order: OrderRequest, idempotency_key: str) -> OrderResult:
        account = order.account_id or self.account_id
        spec = self._spec(order.symbol)
        await self.sync(account)
        quote = await self._market.get_quote(spec.symbol)
        quotes = await self._quotes_for(account)
        request = {"op": "place", **order.model_dump(mode="json")}

        def decide(book: Book, ticket: int) -> tuple[OrderResult, Effects]:
            return self._decide_open(book, spec, order, quote, quotes, ticket, idempotency_key)

        return await self._transact(account, idempotency_key, request, decide)

    async def close_position(
        self, ticket: int, idempotency_key: str, account_id: str | None = None
    ) -> OrderResult:
        account = account_id or self.account_id
        await self.sync(account)
        quotes = await self._quotes_for(account)
        request = {"op": "close", "ticket": ticket}

        def decide(book: Book, _ticket: int) -> tuple[OrderResult, Effects]:
            return self._decide_close(book, ticket, quotes, idempotency_key)

        return await self._transact(account, idempotency_key, request, decide)

    async def modify_position(
        self,
        ticket: int,
        *,
        stop_loss: float | None,
        take_profit: float | None,
        idempotency_key: str,
        account_id: str | None = None,
    ) -> OrderResult:
        """Change SL and/or TP of an open position; None leaves that level unchanged."""
        account, key = account_id or self.account_id, idempotency_key
        await self.sync(account)
        quotes = await self._quotes_for(account)
        request = {"op": "modify", "ticket": ticket, "stop_loss": stop_loss, "take_profit": take_profit}

        def decide(book: Book, _ticket: int) -> tuple[OrderResult, Effects]:
            return self._decide_modify(book, ticket, stop_loss, take_profit, quotes, key)

        return await self._transact(account, key, request, decide)

    async def find_order(self, idempotency_key: str, account_id: str | None = None) -> OrderResult | None:
        raw = await self._redis.get(Keys(self._prefix, account_id or self.account_id).idem(idempotency_key))
        if raw is None:
            return None
        return OrderResult.model_validate(json.loads(text(raw))["result"])

    async def get_portfolio(self, account_id: str | None = None) -> Portfolio:
        while True:  # a state that does not reach back to this week's start (the clock went back): again
            state = await self.account_state(account_id)
            valued = self.value(state, await self._quotes_for(state.account, state.book))
            if valued is not None:
                return valued

    async def account_state(self, account_id: str | None = None, *, sync: bool = True) -> AccountState:
        """What the account's portfolio is valued from, read from Redis now (after closing what SL/TP
        reached, with `sync`): `value` prices it at any quotes. The live page holds it and re-prices it each
        second from the process's shared quotes, reading it again after the account's notices."""
        account = account_id or self.account_id
        changes = self._changes.get(account, 0)
        if sync:
            await self.sync(account)
        keys = Keys(self._prefix, account)
        book = await ledger.read_book(self._redis, keys, self._cfg.initial_balance)
        since = _periods(self._clock.now())[1].timestamp()
        realized = await ledger.realized_after(self._redis, keys, since)
        return AccountState(account, book, tuple(realized), since, changes)

    def value(self, state: AccountState, quotes: Mapping[str, Quote]) -> Portfolio | None:
        """The account's portfolio at these quotes (one for each of `state.symbols`) and the clock's now: the
        one valuation `get_portfolio` and the live page both give. None when `state` holds the realized P&L
        only from after this week's start (read it again)."""
        book = state.book
        positions = [self._position_view(p, quotes) for p in sorted(book.positions.values(), key=_ticket)]
        floating = round(sum(p.profit for p in positions), 2)
        margin = round(sum(p.margin_usd for p in book.positions.values()), 2)
        equity = round(book.balance_usd + floating, 2)
        day_start, week_start = _periods(self._clock.now())
        if week_start.timestamp() < state.since:
            return None
        return Portfolio(
            balance=round(book.balance_usd, 2),
            equity=equity,
            margin=margin,
            free_margin=round(equity - margin, 2),
            positions=positions,
            daily_pnl=round(state.realized_since(day_start) + floating, 2),
            weekly_pnl=round(state.realized_since(week_start) + floating, 2),
            account_id=state.account,
        )

    def changes(self, account_id: str) -> int:
        """How many changes of the account this process made (orders, closes, modifies, SL/TP closes): a
        held AccountState whose `changes` differs is out of date, even where no notice says so (a modify)."""
        return self._changes.get(account_id, 0)

    async def history(self, account_id: str | None = None) -> list[ClosedTrade]:
        """Closed trades, oldest first (SL, TP and manual closes with their realized P&L)."""
        account = account_id or self.account_id
        await self.sync(account)
        raw = await self._redis.lrange(Keys(self._prefix, account).closed, 0, -1)
        return [ClosedTrade.model_validate_json(r) for r in raw]

    async def fills(self, account_id: str | None = None) -> list[dict[str, str]]:
        entries = await self._redis.xrange(Keys(self._prefix, account_id or self.account_id).fills)
        return [{text(k): text(v) for k, v in fields.items()} for _id, fields in entries or [] if fields]

    async def sync(self, account_id: str | None = None) -> list[ClosedTrade]:
        """Close positions whose SL/TP was reached by bars since they were last checked.

        account_id=None syncs every account this Redis prefix knows (for a background ticker).
        """
        if account_id is None:
            closed: list[ClosedTrade] = []
            for account in sorted(
                text(a) for a in await self._redis.smembers(Keys(self._prefix, "").accounts)
            ):
                closed += await self.sync(account)
            return closed
        keys = Keys(self._prefix, account_id)
        snapshot = await ledger.read_book(self._redis, keys, self._cfg.initial_balance)
        if not snapshot.positions:
            return []
        bars: dict[str, tuple[datetime, list[Bar]]] = {}
        for symbol in {p.symbol for p in snapshot.positions.values()}:
            since = min(p.checked_until for p in snapshot.positions.values() if p.symbol == symbol)
            bars[symbol] = (since, await self._market.bars_since(symbol, since))
        result: list[ClosedTrade] = []

        def decide(book: Book, _ticket: int) -> tuple[OrderResult, Effects]:
            fx = self._decide_stops(book, bars)
            result[:] = fx.closed
            return OrderResult(success=True), fx

        await self._transact(account_id, None, {"op": "sync"}, decide)
        return result

    # ---- decisions (pure given the book and the prices) ---------------------------------------

    def _decide_open(
        self,
        book: Book,
        spec: SymbolSpec,
        order: OrderRequest,
        quote: Quote,
        quotes: dict[str, Quote],
        ticket: int,
        key: str,
    ) -> tuple[OrderResult, Effects]:
        side, lots = order.side, order.size_lots
        price = pricing.open_fill(spec, side, quote, self._cfg.slippage_pips)
        problem = pricing.lots_error(spec, lots) or pricing.stops_error(
            spec, side, quote, order.stop_loss, order.take_profit
        )
        margin = pricing.margin_usd(spec, lots, price, self._cfg.leverage)
        if problem is None:
            free = self._free_margin(book, quotes)
            if margin > free:
                problem = f"insufficient free margin: {margin:.2f} USD needed, {free:.2f} USD free"
        now = self._clock.now()
        record = cast(OrderRecord, {"op": "place", "time": now, "key": key, **order.model_dump(mode="json")})
        if problem:
            return _rejected(problem, key), Effects(
                orders=[{**record, "status": "rejected", "reason": problem}]
            )
        slippage = spec.round_price(abs(price - (quote.ask if side == "BUY" else quote.bid)))
        pos = OpenPosition(
            ticket=ticket,
            symbol=spec.symbol,
            side=side,
            size_lots=lots,
            open_price=price,
            open_time=now,
            stop_loss=order.stop_loss,
            take_profit=order.take_profit,
            margin_usd=margin,
            checked_until=quote.time,
        )
        fill = _fill(pos, "open", price, now, key)
        result = OrderResult(
            success=True,
            ticket=ticket,
            executed_price=price,
            slippage=slippage,
            idempotency_key=key,
            message=f"{side} {lots} {spec.symbol} filled at {price} (ticket {ticket})",
        )
        return result, Effects(
            upsert=[pos], fills=[fill], orders=[{**record, "status": "filled", "ticket": ticket}]
        )

    def _decide_close(
        self, book: Book, ticket: int, quotes: dict[str, Quote], key: str
    ) -> tuple[OrderResult, Effects]:
        pos = book.positions.get(ticket)
        if pos is None or pos.symbol not in quotes:
            return _rejected(f"no open position with ticket {ticket}", key), Effects()
        spec = self._specs[pos.symbol]
        price = pricing.close_fill(spec, pos.side, quotes[pos.symbol], self._cfg.slippage_pips)
        now = self._clock.now()
        fx = self._close(book, pos, price, now, "manual", key)
        pnl = fx.closed[0].pnl_usd
        fx.orders.append({"op": "close", "time": now, "key": key, "ticket": ticket, "status": "filled"})
        result = OrderResult(
            success=True,
            ticket=ticket,
            executed_price=price,
            idempotency_key=key,
            message=f"ticket {ticket} closed at {price}, P&L {pnl:+.2f} USD",
        )
        return result, fx

    def _decide_modify(
        self,
        book: Book,
        ticket: int,
        stop_loss: float | None,
        take_profit: float | None,
        quotes: dict[str, Quote],
        key: str,
    ) -> tuple[OrderResult, Effects]:
        pos = book.positions.get(ticket)
        if pos is None or pos.symbol not in quotes:
            return _rejected(f"no open position with ticket {ticket}", key), Effects()
        spec = self._specs[pos.symbol]
        sl = spec.round_price(stop_loss) if stop_loss is not None else pos.stop_loss
        tp = spec.round_price(take_profit) if take_profit is not None else pos.take_profit
        problem = pricing.stops_error(spec, pos.side, quotes[pos.symbol], sl, tp)
        if problem:
            return _rejected(problem, key), Effects()
        updated = pos.model_copy(update={"stop_loss": sl, "take_profit": tp})
        record = OrderRecord(op="modify", time=self._clock.now(), key=key, ticket=ticket, sl=sl, tp=tp)
        result = OrderResult(
            success=True, ticket=ticket, idempotency_key=key, message=f"ticket {ticket}: SL {sl}, TP {tp}"
        )
        return result, Effects(upsert=[updated], orders=[record])

    def _decide_stops(self, book: Book, bars: dict[str, tuple[datetime, list[Bar]]]) -> Effects:
        fx = Effects()
        for pos in sorted(book.positions.values(), key=_ticket):
            fetched = bars.get(pos.symbol)
            if fetched is None or fetched[0] > pos.checked_until:
                continue  # opened after the bars were fetched; the next sync covers it
            later = [b for b in fetched[1] if b.time >= pos.checked_until]
            if not later:
                continue
            hit = pricing.find_exit(self._specs[pos.symbol], pos.side, pos.stop_loss, pos.take_profit, later)
            if hit is None:
                fx.upsert.append(pos.model_copy(update={"checked_until": pricing.past(later[-1])}))
                continue
            one = self._close(book, pos, hit.price, hit.time, hit.reason, None)
            book.balance_usd = fx.balance_usd = one.balance_usd or 0.0  # several closes in one sync add up
            fx.remove += one.remove
            fx.closed += one.closed
            fx.fills += one.fills
        return fx

    def _close(
        self,
        book: Book,
        pos: OpenPosition,
        price: float,
        when: datetime,
        reason: pricing.ExitReason,
        key: str | None,
    ) -> Effects:
        spec = self._specs[pos.symbol]
        pnl = pricing.pnl_usd(spec, pos.side, pos.size_lots, pos.open_price, price)
        trade = ClosedTrade(
            **pos.model_dump(exclude={"margin_usd", "checked_until"}),
            close_price=price,
            close_time=when,
            reason=reason,
            pnl_usd=pnl,
        )
        return Effects(
            balance_usd=round(book.balance_usd + pnl, 2),
            remove=[pos.ticket],
            closed=[trade],
            fills=[_fill(pos, reason, price, when, key, pnl)],
        )

    # ---- plumbing ---------------------------------------------------------------------------------

    async def _transact(
        self, account: str, key: str | None, request: Mapping[str, object], decide: Decide
    ) -> OrderResult:
        """Apply `decide` to the account in one transaction, once per idempotency key: `request` (what was
        asked, as JSON) is fingerprinted so a key reused for another request is told apart."""
        if key is not None and not key.strip():
            raise ServiceError("an idempotency key is required for every order, close and modify")
        keys = Keys(self._prefix, account)
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        watched = [keys.account, keys.positions] + ([keys.idem(key)] if key else [])
        legacy: str | None = None
        if request["op"] == "place":
            # The two shared keys are another slot's on a cluster: outside the transaction. Only a place
            # opens a position, so only it needs the account in the set the ticker walks (added first: an
            # account listed without positions costs the ticker a read, one with unlisted positions would
            # have no SL/TP checks).
            legacy = await ledger.before_place(self._redis, keys, account)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*watched)
                    if key is not None and (prior := await pipe.get(keys.idem(key))) is not None:
                        await pipe.unwatch()
                        return _replay(text(prior), fingerprint)
                    book = await ledger.read_book(pipe, keys, self._cfg.initial_balance)
                    # Tickets are drawn before MULTI (INCR is not watched); a retried attempt just skips one.
                    placing = request["op"] == "place"
                    ticket = await ledger.draw_ticket(pipe, keys, book, legacy) if placing else 0
                    result, fx = decide(book, ticket)
                    pipe.multi()
                    ledger.queue_writes(pipe, keys, account, book, fx, self._notices_ttl)
                    if key is not None:
                        record = {"fingerprint": fingerprint, "result": result.model_dump(mode="json")}
                        pipe.set(keys.idem(key), json.dumps(record))
                    await pipe.execute()
                    if request["op"] != "sync" or fx.closed:  # not a sync that only moved checked_until
                        self._changes[account] = self._changes.get(account, 0) + 1
                    return result
                except WatchError:
                    continue

    def _spec(self, symbol: str) -> SymbolSpec:
        spec = self._specs.get(symbol.strip().upper())
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "(none configured)"
            raise UnknownSymbolError(f"unknown symbol '{symbol}'; known: {known}")
        return spec

    async def _quotes_for(self, account: str, book: Book | None = None) -> dict[str, Quote]:
        if book is None:
            raw = await self._redis.hgetall(Keys(self._prefix, account).positions)
            symbols = {OpenPosition.model_validate_json(text(v)).symbol for v in raw.values()}
        else:
            symbols = {p.symbol for p in book.positions.values()}
        return {s: await self._market.get_quote(s) for s in sorted(symbols)}

    def _free_margin(self, book: Book, quotes: dict[str, Quote]) -> float:
        floating = 0.0
        for pos in book.positions.values():
            quote = quotes.get(pos.symbol)
            if quote is not None:  # a position opened meanwhile by another process: valued at its open
                mark = pricing.mark_price(self._specs[pos.symbol], pos.side, quote)
                floating += pricing.pnl_usd(
                    self._specs[pos.symbol], pos.side, pos.size_lots, pos.open_price, mark
                )
        used = sum(p.margin_usd for p in book.positions.values())
        return round(book.balance_usd + floating - used, 2)

    def _position_view(self, pos: OpenPosition, quotes: Mapping[str, Quote]) -> Position:
        spec = self._specs[pos.symbol]
        mark = pricing.mark_price(spec, pos.side, quotes[pos.symbol])
        return Position(
            ticket=pos.ticket,
            symbol=pos.symbol,
            type=pos.side,
            size=pos.size_lots,
            open_price=pos.open_price,
            current_price=mark,
            profit=pricing.pnl_usd(spec, pos.side, pos.size_lots, pos.open_price, mark),
            stop_loss=pos.stop_loss,
            take_profit=pos.take_profit,
            open_time=pos.open_time,
        )


@dataclass(frozen=True)
class AccountState:
    """One account as read from Redis at one moment: its book and the realized P&L of the closes since
    `since` (epoch s, the start of that moment's week) as (close time epoch s, USD), oldest first; `changes`:
    PaperBroker.changes(account) when it was read."""

    account: str
    book: Book
    realized: tuple[tuple[float, float], ...]
    since: float
    changes: int = 0

    @property
    def symbols(self) -> list[str]:
        return sorted({p.symbol for p in self.book.positions.values()})

    def realized_since(self, start: datetime) -> float:
        floor = start.timestamp()
        return round(sum(pnl for when, pnl in self.realized if when >= floor), 2)


def _periods(now: datetime) -> tuple[datetime, datetime]:
    """The starts of `now`'s day and week (Monday)."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day_start, day_start - timedelta(days=day_start.weekday())


def _ticket(pos: OpenPosition) -> int:
    return pos.ticket


def _rejected(message: str, key: str | None) -> OrderResult:
    return OrderResult(success=False, message=message, idempotency_key=key)


def _replay(raw: str, fingerprint: str) -> OrderResult:
    record = json.loads(raw)
    result = OrderResult.model_validate(record["result"]).model_copy(update={"duplicate": True})
    if record.get("fingerprint") != fingerprint:
        note = "idempotency key already used for a different request; nothing was done. First result: "
        result = result.model_copy(update={"message": note + result.message})
    return result


def _fill(
    pos: OpenPosition, kind: str, price: float, when: datetime, key: str | None, pnl_usd: float | None = None
) -> dict[str, str]:
    fill = {
        "ticket": str(pos.ticket),
        "kind": kind,
        "symbol": pos.symbol,
        "side": pos.side,
        "lots": repr(pos.size_lots),
        "price": repr(price),
        "time": when.isoformat(),
        "key": key or "",
    }
    if pnl_usd is not None:
        fill["pnl_usd"] = repr(pnl_usd)
    return fill
