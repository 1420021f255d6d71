"""Running the graph for a request: the session lock, run metrics, and Server-Sent Events framing."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from config import Settings
from graph.copilot import NoPendingApproval
from server.metrics import Metrics
from tools.locks import RunLocks, SessionBusy

log = logging.getLogger("copilot.server")

Event = dict[str, Any]
NOTHING_PENDING = "nothing in this session is waiting for your approval"


def check_message(message: str, settings: Settings) -> None:
    limit = settings.server.max_message_chars
    if len(message) > limit:
        raise HTTPException(
            422, f"message is too long ({len(message)} characters; the limit is {limit}): send it in parts"
        )
    if not message.strip():
        raise HTTPException(422, "message is empty: type a question or a command such as /help")


def record_result(metrics: Metrics, kind: str, result: dict[str, Any] | None) -> None:
    metrics.graph_runs.labels(kind, "ok" if result is not None else "error").inc()
    order = (result or {}).get("order")
    if order:  # a chat "/approve" counts as much as the approval endpoint
        metrics.orders.labels(str(order.get("status", "unknown"))).inc()


@asynccontextmanager
async def session_lock(
    locks: RunLocks, metrics: Metrics, user_id: str, session_id: str
) -> AsyncIterator[None]:
    """Hold the session for one run; a second run gets 409 (or waits with busy_policy=wait)."""
    try:
        async with locks.hold(user_id, session_id):
            yield
    except SessionBusy as exc:
        metrics.busy.inc()
        raise HTTPException(409, str(exc)) from None


def sse_frame(event: Event) -> bytes:
    data = json.dumps(event.get("data", {}), default=str, ensure_ascii=False)
    return f"event: {event['event']}\ndata: {data}\n\n".encode()


async def stream_response(
    locks: RunLocks,
    metrics: Metrics,
    user_id: str,
    session_id: str,
    kind: str,
    events: Callable[[], AsyncIterator[Event]],
) -> StreamingResponse:
    """Take the lock before answering (so busy is a real 409), stream the run's events, release at the end."""
    stack = AsyncExitStack()
    await stack.enter_async_context(session_lock(locks, metrics, user_id, session_id))

    async def body() -> AsyncIterator[bytes]:
        final: dict[str, Any] | None = None
        async with stack:
            try:
                async for event in events():
                    if event.get("event") == "final":
                        final = event.get("data")
                    yield sse_frame(event)
            except NoPendingApproval:  # decided elsewhere between our check and the lock
                yield sse_frame({"event": "error", "data": {"message": NOTHING_PENDING}})
            except Exception:
                # The facade reports its own failures as "error" events; this is the last line of defence.
                log.exception("stream failed for session %s", session_id)
                yield sse_frame({"event": "error", "data": {"message": "the run failed; see the server log"}})
            finally:
                record_result(metrics, kind, final)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


async def run_once(
    locks: RunLocks,
    metrics: Metrics,
    user_id: str,
    session_id: str,
    kind: str,
    call: Callable[[], Awaitable[Any]],
) -> Any:
    async with session_lock(locks, metrics, user_id, session_id):
        try:
            result = await call()
        except Exception:
            record_result(metrics, kind, None)
            raise
    record_result(metrics, kind, result.model_dump() if hasattr(result, "model_dump") else result)
    return result
