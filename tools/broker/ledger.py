"""The paper account's Redis layout: key names, stored records, and reading/writing one account's book;
and what every Redis-backed account service (the paper broker, the alerts) is built on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Required, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio.client import Pipeline, Redis

from tools.broker.pricing import ExitReason
from tools.keys import AccountKeys, legacy_tickets_key, paper_accounts_key
from tools.notices import queue_notice
from tools.redis_clients import reply_text
from tools.schemas import Side

if TYPE_CHECKING:
    from config import Settings
    from tools.protocols import Clock, MarketData

DEFAULT_ACCOUNT = "paper"


class RedisAccountService:
    """State in Redis under settings.redis.prefix, per account (account_id when a call names none), read
    against the market at the clock's now."""

    def __init__(
        self,
        redis: Redis,
        market: MarketData,
        clock: Clock,
        settings: Settings,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> None:
        self._redis = redis
        self._market = market
        self._clock = clock
        self._prefix = settings.redis.prefix
        self._notices_ttl = settings.redis.ttl
        self.account_id = account_id


class _Trade(BaseModel):
    """A position as stored, by the trade's names (tools.schemas.TradeIdea: side, size_lots, stop_loss,
    take_profit); the stored JSON and the trade history the API serves keep `lots` (an alias)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    ticket: int
    symbol: str
    side: Side
    size_lots: float = Field(alias="lots")
    open_price: float
    open_time: datetime
    stop_loss: float | None = None
    take_profit: float | None = None


class OpenPosition(_Trade):
    margin_usd: float
    # Bars opening at or after this time are still to be checked for SL/TP (a quote's time at open).
    checked_until: datetime


class ClosedTrade(_Trade):
    close_price: float
    close_time: datetime
    reason: ExitReason  # sl / tp: the market closed it at that level; manual: the trader's approved close
    pnl_usd: float


class Keys(AccountKeys):
    """Every key of one account lives under the account's hash tag (tools/keys.py), so one transaction over
    them maps to one Redis Cluster slot; the two shared keys are never in a transaction."""

    def __init__(self, prefix: str, account_id: str) -> None:
        super().__init__(prefix, account_id)
        self.legacy_tickets = legacy_tickets_key(prefix)  # the shared counter of earlier versions
        self.accounts = paper_accounts_key(prefix)  # set of account ids (for the background ticker)


class OrderRecord(TypedDict, total=False):
    """One entry of an account's `orders` list (JSON, append-only): the operation asked under an idempotency
    key and what became of it. A place record also carries the OrderRequest's fields (symbol, action...)."""

    op: Required[Literal["place", "close", "modify"]]
    time: Required[datetime]
    key: Required[str]
    status: Literal["filled", "rejected"]
    reason: str  # why it was rejected
    ticket: int
    sl: float | None  # modify: the levels now in force
    tp: float | None


@dataclass
class Book:
    """One account's mutable state as read inside a WATCH; `Effects` carry what to write back."""

    balance_usd: float
    positions: dict[int, OpenPosition]
    exists: bool


@dataclass
class Effects:
    balance_usd: float | None = None
    upsert: list[OpenPosition] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)
    closed: list[ClosedTrade] = field(default_factory=list)
    fills: list[dict[str, str]] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)


async def read_book(pipe: Redis | Pipeline, keys: Keys, initial_balance_usd: float) -> Book:
    """Read directly or in a pipeline's immediate (WATCH) mode; a new account has the initial balance."""
    balance = await pipe.hget(keys.account, "balance_usd")
    raw = await pipe.hgetall(keys.positions)
    positions = {int(text(t)): OpenPosition.model_validate_json(v) for t, v in raw.items()}
    if balance is None:
        return Book(initial_balance_usd, positions, exists=False)
    return Book(float(text(balance)), positions, exists=True)


def queue_writes(
    pipe: Pipeline, keys: Keys, account_id: str, book: Book, fx: Effects, notices_ttl: int
) -> None:
    """Queue the effects after MULTI; they apply together or (on a WATCH conflict) not at all. Each fill is
    also the account's notice, in the same transaction: no fill without its notice, no notice twice."""
    if not book.exists:  # its entry in the shared set of accounts: added before the transaction (_transact)
        pipe.hset(keys.account, "balance_usd", repr(book.balance_usd))
    if fx.balance_usd is not None:
        pipe.hset(keys.account, "balance_usd", repr(fx.balance_usd))
    for pos in fx.upsert:
        pipe.hset(keys.positions, str(pos.ticket), pos.model_dump_json())
    if fx.remove:
        pipe.hdel(keys.positions, *[str(t) for t in fx.remove])
    for trade in fx.closed:
        pipe.rpush(keys.closed, trade.model_dump_json())
        pipe.zadd(keys.realized, {f"{trade.ticket}:{trade.pnl_usd}": trade.close_time.timestamp()})
    for fill in fx.fills:
        pipe.xadd(keys.fills, fill)  # type: ignore[arg-type]
        queue_notice(pipe, keys.notices, notices_ttl, "fill", fill)
    for order in fx.orders:
        pipe.rpush(keys.orders, json.dumps(order, default=str))


async def draw_ticket(pipe: Pipeline, keys: Keys, book: Book, legacy: str | None) -> int:
    """The account's next ticket (1, 2, ... per account), in the pipeline's immediate (WATCH) mode. An account
    from before tickets were numbered per account continues above the old shared counter (`legacy`, read
    before the WATCH: it is another slot's key), so its tickets stay unique."""
    if book.exists and legacy is not None and not await pipe.exists(keys.tickets):
        await pipe.set(keys.tickets, legacy, nx=True)
    return int(await pipe.incr(keys.tickets))


async def before_place(redis: Redis, keys: Keys, account_id: str) -> str | None:
    """Before a place's transaction, in one round trip (these are other slots' keys on a cluster): the
    account added to the set the ticker walks, and the shared counter of earlier versions when the account
    has no counter of its own yet (draw_ticket continues above it)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.accounts, account_id)
        pipe.exists(keys.tickets)
        pipe.get(keys.legacy_tickets)
        _, own, legacy = await pipe.execute()
    return None if own or legacy is None else text(legacy)


text = reply_text  # kept under its old name for the broker modules


async def realized_after(redis: Any, keys: Keys, since: float) -> list[tuple[float, float]]:
    """The realized P&L of the closes at or after `since` (epoch s): (close time, USD), oldest first."""
    members = await redis.zrangebyscore(keys.realized, since, "+inf", withscores=True)
    return [(float(score), float(text(m).split(":", 1)[1])) for m, score in members]
