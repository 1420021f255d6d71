"""Graph runs belong to the session, not to the HTTP connection that started them.

A run is an asyncio task holding the session's lease; responses (JSON or Server-Sent Events) are views on
it. A client that goes away stops watching and the run goes on to its checkpoint; another client can
re-attach (`GET /api/sessions/{id}/run`) or read the result from the session. Stopping a run is an explicit
`POST /api/sessions/{id}/cancel`, honoured in whichever server process runs it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

from config import Settings
from graph.copilot import Copilot, NoPendingApproval
from graph.recovery.runs import settled_state
from graph.schemas import ChatResult, SessionState
from graph.streaming import Event
from server.api.responses import unprocessable
from server.metrics import Metrics
from tools.locks import LeaseHeld, Leases
from tools.schemas import JsonObject

log = logging.getLogger("copilot.server")
SLOW_RUN_SECONDS = 20

NOTHING_PENDING = "nothing in this session is waiting for your approval"
NOT_FOUND = "no such session for this user"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def check_message(message: str, settings: Settings) -> None:
    limit = settings.server.max_message_chars
    if len(message) > limit:
        raise unprocessable(
            ("body", "message"),
            f"message is too long ({len(message)} characters; the limit is {limit}): send it in parts",
        )
    if not message.strip():
        raise unprocessable(
            ("body", "message"), "message is empty: type a question or a command such as /help"
        )


def busy(session_id: str, retry_after: int) -> HTTPException:
    return HTTPException(
        409,
        f"a run is already in progress for this session; retry in {retry_after} s, follow it with "
        f"GET /api/sessions/{session_id}/run or stop it with POST /api/sessions/{session_id}/cancel",
        headers={"Retry-After": str(retry_after)},
    )


def record_result(metrics: Metrics, kind: str, result: JsonObject | None) -> None:
    metrics.graph_runs.labels(kind, "ok" if result is not None else "error").inc()
    order = (result or {}).get("order")
    if order and not (result or {}).get("replayed"):  # a chat "/approve" counts as much as the endpoint
        metrics.orders.labels(str(order.get("status", "unknown"))).inc()


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: its chain of awaited coroutines and async generators, outermost first."""
    where: list[str] = []
    step: Any = task.get_coro()
    while step is not None and len(where) < 40:
        frame = getattr(step, "cr_frame", None) or getattr(step, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name} ({'/'.join(frame.f_code.co_filename.rsplit('/', 2)[-2:])}:"
                         f"{frame.f_lineno})")  # fmt: skip
        nxt = getattr(step, "cr_await", None) or getattr(step, "ag_await", None)
        if nxt is not None and not hasattr(nxt, "cr_frame") and not hasattr(nxt, "ag_frame"):
            # an `async for`'s pending __anext__ (async_generator_asend) only refers to its generator
            nxt = next((r for r in gc.get_referents(nxt) if hasattr(r, "ag_frame")), nxt)
        step = nxt
    return " -> ".join(where[-8:])


def sse_frame(event: Event) -> bytes:
    data = json.dumps(event["data"], default=str, ensure_ascii=False)
    return f"event: {event['event']}\ndata: {data}\n\n".encode()


class Run:
    """One run's events so far, and a way to follow the rest while the task lives."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def push(self, event: Event) -> None:
        self.events.append(event)
        self._wake.set()
        self._wake = asyncio.Event()

    def finish(self) -> None:
        self._wake.set()

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    @property
    def final(self) -> JsonObject | None:
        return next((e["data"] for e in reversed(self.events) if e["event"] == "final"), None)

    async def follow(self) -> AsyncIterator[Event]:
        """Every event from the first; ends with the run. Closing this iterator leaves the run alone."""
        seen = 0
        while True:
            wake = self._wake
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            if self.done:
                return
            await wake.wait()


class RunRegistry:
    """This process's live runs, one per session; the session lease makes it one per session overall."""

    def __init__(self, locks: Leases, metrics: Metrics) -> None:
        self.locks = locks
        self.metrics = metrics
        self._runs: dict[tuple[str, str], Run] = {}

    def current(self, user_id: str, session_id: str) -> Run | None:
        run = self._runs.get((user_id, session_id))
        return run if run is not None and not run.done else None

    async def start(
        self,
        user_id: str,
        session_id: str,
        kind: str,
        events: Callable[[], AsyncIterator[Event]],
        queue: bool = False,
    ) -> Run:
        """Take the session's lease and start the run; it outlives the request. When the session is busy:
        `queue` (decisions) waits behind the running turn, anything else follows `server.busy_policy`
        (409, or wait)."""
        try:
            token = await self.locks.take(user_id, session_id, wait=True if queue else None)
        except LeaseHeld as exc:
            self.metrics.busy.inc()
            raise busy(session_id, exc.retry_after) from None
        run = Run(kind)
        run.task = asyncio.create_task(self._drive(run, user_id, session_id, token, events))
        self._runs[(user_id, session_id)] = run
        return run

    async def _drive(
        self, run: Run, user_id: str, session_id: str, token: str, events: Callable[[], AsyncIterator[Event]]
    ) -> None:
        watchdog = asyncio.create_task(self._report_slow(run, session_id))
        try:
            async with self.locks.keep(user_id, session_id, token, on_cancel=run.task):
                try:
                    async for event in events():
                        run.push(event)
                except asyncio.CancelledError:
                    # An explicit cancel: the thread keeps its last checkpoint; a decision that was already
                    # recorded is completed at the next access (reconciliation).
                    run.push({"event": "error", "data": {"message": "the run was cancelled"}})
                except NoPendingApproval as exc:  # decided elsewhere between our check and the lease
                    run.error = exc
                    run.push({"event": "error", "data": {"message": NOTHING_PENDING}})
                except Exception as exc:
                    log.exception("run failed for session %s", session_id)
                    run.error = exc
                    run.push({"event": "error", "data": {"message": "the run failed; see the server log"}})
        finally:
            watchdog.cancel()
            record_result(self.metrics, run.kind, run.final)
            if self._runs.get((user_id, session_id)) is run:
                del self._runs[(user_id, session_id)]
            run.finish()

    async def _report_slow(self, run: Run, session_id: str) -> None:
        """A run still going after SLOW_RUN_SECONDS is logged once with where it waits (its await chain), so
        a run that holds a session for long can be told apart from a busy machine."""
        await asyncio.sleep(SLOW_RUN_SECONDS)
        if run.task is None or run.task.done():
            return
        log.warning(
            "run %s of session %s still going after %g s (events so far: %s); waiting in: %s",
            run.kind, session_id, SLOW_RUN_SECONDS, [e["event"] for e in run.events][-5:], awaiting(run.task),
        )  # fmt: skip

    async def cancel(self, user_id: str, session_id: str) -> str | None:
        """ "cancelled" (here), "cancelling" (asked the process that runs it), None when nothing runs."""
        run = self.current(user_id, session_id)
        if run is not None and run.task is not None:
            run.task.cancel()
            await asyncio.wait({run.task})
            return "cancelled"
        return "cancelling" if await self.locks.request_cancel(user_id, session_id) else None

    async def drain(self, seconds: float) -> None:
        """At shutdown: let live runs reach their checkpoint for a while, then stop them."""
        tasks = {r.task for r in self._runs.values() if r.task is not None and not r.task.done()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


@dataclass
class Runner:
    """The current user's runs: what every route that runs the graph needs, bundled (one dependency)."""

    user: str
    copilot: Copilot
    registry: RunRegistry

    @property
    def locks(self) -> Leases:
        return self.registry.locks

    async def once(
        self, session_id: str, kind: str, call: Callable[[], Awaitable[ChatResult]], queue: bool = False
    ) -> ChatResult:
        """A JSON answer: start the run (`queue`: behind a running one), wait for it (a dropped client does
        not stop it), raise what it raised (the app maps facade errors to HTTP)."""

        async def events() -> AsyncIterator[Event]:
            result = await call()
            yield {"event": "final", "data": result.model_dump()}

        run = await self.registry.start(self.user, session_id, kind, events, queue)
        assert run.task is not None
        await asyncio.shield(run.task)
        if run.error is not None:
            raise run.error
        final = run.final
        if final is None:
            raise HTTPException(409, "the run was cancelled before it finished")
        return ChatResult.model_validate(final)

    async def stream(
        self, session_id: str, kind: str, events: Callable[[], AsyncIterator[Event]], queue: bool = False
    ) -> StreamingResponse:
        """Take the lease before answering (so busy is a real 409), then stream a view on the run."""
        return follow_response(await self.registry.start(self.user, session_id, kind, events, queue))

    async def state(self, session_id: str) -> SessionState:
        """Sessions are per user: someone else's session id answers 404, exactly like an unknown one. A run
        a crash interrupted is completed first (when no run holds the session)."""
        state = await settled_state(self.copilot, self.locks, self.user, session_id)
        if state is None:
            raise HTTPException(404, NOT_FOUND)
        return state


def follow_response(run: Run) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for event in run.follow():
            yield sse_frame(event)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


@asynccontextmanager
async def session_lease(
    locks: Leases, metrics: Metrics, session_id: str, user_id: str
) -> AsyncIterator[None]:
    """Hold the session for a short change that must not interleave with a run (clear, delete)."""
    try:
        async with locks.hold(user_id, session_id):
            yield
    except LeaseHeld as exc:
        metrics.busy.inc()
        raise busy(session_id, exc.retry_after) from None
