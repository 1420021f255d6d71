"""Contract tests: HttpBroker/HttpAlerts against api.router(PaperBroker, RedisAlerts) under real uvicorn."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from config import Settings
from server.in_thread import free_port
from tests.support.broker_support import bars_between, world
from tests.support.serving import serve_app
from tools.broker.alerts import RedisAlerts
from tools.broker.api import router
from tools.broker.factory import build_broker
from tools.broker.http import HttpAlerts, HttpBroker
from tools.broker.observed import ObservedHttpBroker
from tools.broker.paper import PaperBroker
from tools.market.clock import ManualClock
from tools.market.csv_store import CsvMarketData
from tools.notices import read_notices
from tools.protocols import ServiceError
from tools.schemas import AlertRequest, OrderRequest, SymbolSpec

World = tuple[ManualClock, CsvMarketData, dict[str, SymbolSpec]]


@pytest.fixture
def market_world(shared_data: Path) -> World:
    return world(shared_data)


def trading_app(redis_url: str, market_world: World, settings: Settings) -> FastAPI:
    """The trading service over the paper broker; its Redis client lives in the server's own event loop."""
    clock, market, specs = market_world
    client = aioredis.from_url(redis_url, decode_responses=True)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)
    paper = PaperBroker(client, market, clock, specs, settings)
    app.include_router(router(paper, RedisAlerts(client, market, clock, settings)))
    return app


@pytest.fixture
def base_url(redis_url: str, market_world: World, settings: Settings) -> Iterator[str]:
    with serve_app(trading_app(redis_url, market_world, settings)) as url:
        yield url


@pytest.fixture
def local(redis_client: aioredis.Redis, market_world: World, settings: Settings) -> PaperBroker:
    """A second broker on the same Redis: what the service stored, seen from outside it."""
    clock, market, specs = market_world
    return PaperBroker(redis_client, market, clock, specs, settings)


@pytest.fixture
async def remote(base_url: str) -> AsyncIterator[HttpBroker]:
    client = HttpBroker(base_url, timeout=10, retries=2)
    yield client
    await client.aclose()


async def order(market_world: World, **kw: object) -> OrderRequest:
    quote = await market_world[1].get_quote("XAUUSD")
    fields: dict[str, object] = {
        "symbol": "XAUUSD",
        "action": "BUY",
        "size": 0.1,
        "stop_loss": quote.bid - 20,
    }
    return OrderRequest.model_validate({**fields, **kw})


async def test_same_key_twice_over_http_places_one_position(
    remote: HttpBroker, local: PaperBroker, market_world: World
) -> None:
    first = await remote.place_order(await order(market_world), "http-1")
    second = await remote.place_order(await order(market_world), "http-1")
    assert first.success and not first.duplicate and first.idempotency_key == "http-1"
    assert second.duplicate and second.ticket == first.ticket
    assert [p.ticket for p in (await local.get_portfolio()).positions] == [first.ticket]
    assert await remote.get_portfolio() == await local.get_portfolio()


async def test_close_and_modify_over_http_are_keyed(
    remote: HttpBroker, local: PaperBroker, market_world: World
) -> None:
    ticket = (await remote.place_order(await order(market_world), "o")).ticket
    assert ticket is not None
    quote = await market_world[1].get_quote("XAUUSD")
    moved = await remote.modify_position(
        ticket, stop_loss=round(quote.bid - 10, 2), take_profit=round(quote.ask + 10, 2), idempotency_key="m"
    )
    assert moved.success and (await local.get_portfolio()).positions[0].stop_loss == round(quote.bid - 10, 2)
    assert (
        await remote.modify_position(ticket, stop_loss=None, take_profit=None, idempotency_key="m")
    ).duplicate
    closed = await remote.close_position(ticket, "c")
    again = await remote.close_position(ticket, "c")
    assert closed.success and again.duplicate and again.executed_price == closed.executed_price == quote.bid
    assert (await local.get_portfolio()).positions == [] and len(await local.history()) == 1


async def test_errors_come_back_as_json_with_a_message(
    base_url: str, remote: HttpBroker, market_world: World
) -> None:
    body = (await order(market_world)).model_dump(mode="json")
    async with httpx.AsyncClient(base_url=base_url) as raw:
        missing = await raw.post("/api/trade", json=body)
        assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
        unkeyed_close = await raw.post("/api/positions/1/close", json={})
        assert unkeyed_close.status_code == 400
    with pytest.raises(ServiceError, match="unknown symbol 'BTCUSD'"):
        await remote.place_order(OrderRequest(symbol="BTCUSD", action="BUY", size=0.1, stop_loss=1), "u")
    refused = await remote.place_order(await order(market_world, size=0.003), "tiny")
    assert not refused.success and "outside" in refused.message
    with pytest.raises(ServiceError, match="idempotency key is required"):
        await remote.place_order(await order(market_world), " ")


class DroppingProxy:
    """A TCP proxy that forwards each HTTP request to the backend but, for the first `drops` requests,
    hangs up instead of relaying the answer: the request was processed, the client never heard back."""

    def __init__(self, backend: str, drops: int) -> None:
        self.backend_port = int(backend.rsplit(":", 1)[1])
        self.drops, self.requests = drops, 0
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while request := _read_http(conn):
                with socket.create_connection(("127.0.0.1", self.backend_port)) as backend:
                    backend.sendall(request)
                    answer = _read_http(backend)
                self.requests += 1
                if self.drops > 0:
                    self.drops -= 1
                    return  # closing without an answer
                conn.sendall(answer)

    def close(self) -> None:
        self._server.close()


def _read_http(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def dropping_proxy(backend: str, drops: int) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(backend, drops)
    try:
        yield proxy
    finally:
        proxy.close()


async def test_retry_after_a_dropped_connection_does_not_duplicate(
    base_url: str, local: PaperBroker, market_world: World
) -> None:
    with dropping_proxy(base_url, drops=1) as proxy:
        client = HttpBroker(f"http://127.0.0.1:{proxy.port}", timeout=10, retries=3)
        try:
            result = await client.place_order(await order(market_world), "lost-answer")
        finally:
            await client.aclose()
    assert proxy.requests == 2  # the first answer was lost, the retry carried the same key
    assert result.success and result.duplicate
    positions = (await local.get_portfolio()).positions
    assert [p.ticket for p in positions] == [result.ticket]


async def test_http_alerts_roundtrip_and_trigger(base_url: str, market_world: World) -> None:
    clock, market, _ = market_world
    quote = await market.get_quote("XAUUSD")
    client = HttpAlerts(base_url, timeout=10, retries=1)
    try:
        made = await client.set_alert(AlertRequest(symbol="XAUUSD", condition="below", price=quote.bid - 6))
        other = await client.set_alert(
            AlertRequest(symbol="XAUUSD", condition="above", price=quote.bid + 900), account_id="desk2"
        )
        assert made.status == "active" and made.alert_id.startswith("alert_")
        crossing = next(
            b for b in await bars_between(market, clock, quote.time, hours=72) if b.low <= made.price
        )
        clock.set(crossing.time + timedelta(minutes=1))
        listed = await client.list_alerts()
        assert [(a.alert_id, a.status, a.triggered_at) for a in listed] == [
            (made.alert_id, "triggered", crossing.time)
        ]
        assert [a.alert_id for a in await client.list_alerts("desk2")] == [other.alert_id]
        with pytest.raises(ServiceError, match="unknown symbol"):
            await client.set_alert(AlertRequest(symbol="NOPE", condition="above", price=1))
    finally:
        await client.aclose()


def test_factory_picks_http_when_a_trading_url_is_set(
    redis_client: aioredis.Redis, market_world: World, settings: Settings
) -> None:
    clock, market, specs = market_world
    broker, alerts = build_broker(settings, redis_client, market, clock, specs)
    assert isinstance(broker, PaperBroker) and isinstance(alerts, RedisAlerts)
    remote_settings = settings.model_copy(
        update={"services": settings.services.model_copy(update={"trading_url": "http://127.0.0.1:9"})}
    )
    broker, alerts = build_broker(remote_settings, redis_client, market, clock, specs)
    assert isinstance(broker, HttpBroker) and isinstance(alerts, HttpAlerts)


async def test_the_fills_this_process_observes_from_the_platform_are_one_notice_each(
    base_url: str, redis_client: aioredis.Redis, market_world: World, settings: Settings
) -> None:
    """The platform (here a paper broker under another key prefix, as a separate deployment would be)
    commits the fill; the answer to our own order or close is announced once, also when it is sent again."""
    ours = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": "obs-" + settings.redis.prefix})}
    )
    brokers = [
        ObservedHttpBroker(base_url, 10, 2, redis=redis_client, clock=market_world[0], settings=ours)
        for _ in range(2)  # two server processes
    ]
    try:
        placed = [await b.place_order(await order(market_world, account_id="desk"), "obs-1") for b in brokers]
        closed = [await b.close_position(placed[0].ticket or 0, "obs-c", "desk") for b in brokers]
    finally:
        for b in brokers:
            await b.aclose()
    assert placed[1].duplicate and closed[1].duplicate and closed[0].success
    got = await read_notices(redis_client, ours.redis.prefix, "desk", "0-0", None)
    assert [(n.kind, n.data["kind"], n.data["ticket"], n.data["key"]) for n in got] == [
        ("fill", "open", str(placed[0].ticket), "obs-1"),
        ("fill", "manual", str(placed[0].ticket), "obs-c"),
    ]
    assert float(got[0].data["price"]) == placed[0].executed_price and got[0].data["symbol"] == "XAUUSD"
