"""Sessions of the current user: list, state, checkpoint history, approval decisions, clear, delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from graph.approval import Decision
from graph.schemas import ChatResult, CheckpointInfo, SessionState
from server.api.deps import SESSION_ID_PATTERN, MetricsDep, RunnerDep, SessionId
from server.api.models import ClearRequest, DecisionRequest, SessionList, StatusResponse
from server.api.responses import (
    CHANGE,
    DECIDE,
    DECIDE_STREAM,
    FOLLOW,
    READ,
    SESSION,
    UNPARSABLE,
    unprocessable,
)
from server.api.routes.chat import STREAM_DOC
from server.api.runs import Runner, busy, follow_response, session_lease
from server.metrics import Metrics

router = APIRouter(prefix="/api", tags=["sessions"])


@router.get("/sessions", response_model=SessionList, responses=READ)
async def list_sessions(run: RunnerDep) -> SessionList:
    return SessionList(sessions=await run.copilot.sessions(run.user))


@router.get("/sessions/{session_id}", response_model=SessionState, responses=SESSION)
async def get_session(session_id: SessionId, run: RunnerDep) -> SessionState:
    """The session's messages, pending approval and last signal."""
    return await run.state(session_id)


@router.get("/sessions/{session_id}/history", response_model=list[CheckpointInfo], responses=SESSION)
async def get_history(
    session_id: SessionId, run: RunnerDep, limit: int = Query(20, ge=1, le=200)
) -> list[CheckpointInfo]:
    """The session's checkpoints, newest first."""
    await run.state(session_id)
    return await run.copilot.history(run.user, session_id, limit=limit)


@router.get("/sessions/{session_id}/history/{checkpoint_id}", response_model=SessionState, responses=SESSION)
async def get_checkpoint(session_id: SessionId, checkpoint_id: str, run: RunnerDep) -> SessionState:
    await run.state(session_id)
    state = await run.copilot.checkpoint(run.user, session_id, checkpoint_id)
    if state is None:
        raise HTTPException(404, "no such checkpoint in this session")
    return state


@router.get(
    "/sessions/{session_id}/run", response_class=StreamingResponse, description=STREAM_DOC, responses=FOLLOW
)
async def follow_run(session_id: SessionId, run: RunnerDep) -> StreamingResponse:
    """Re-attach to the session's run in progress: its events from the first, then live until it ends."""
    current = run.registry.current(run.user, session_id)
    if current is not None:
        return follow_response(current)
    if await run.locks.redis.exists(run.locks.key(run.user, session_id)):
        raise busy(session_id, await run.locks.busy_for(run.user, session_id))  # on another server process
    await run.state(session_id)
    raise HTTPException(404, f"no run in progress; GET /api/sessions/{session_id} has the latest result")


@router.post("/sessions/{session_id}/cancel", response_model=StatusResponse, responses=CHANGE)
async def cancel_run(session_id: SessionId, run: RunnerDep) -> StatusResponse:
    """Stop the session's run. The thread keeps its last checkpoint; an approval already recorded is still
    carried out (reconciled) at the next access. `cancelling`: another server process runs it."""
    status = await run.registry.cancel(run.user, session_id)
    if status is None:
        await run.state(session_id)
        raise HTTPException(409, "no run is in progress for this session")
    return StatusResponse(status=status, session_id=session_id)


async def pending_decision(
    session_id: SessionId, body: DecisionRequest, run: RunnerDep, metrics: MetricsDep
) -> Decision:
    """The body as the graph's Decision: 404 for another user's (or no) session (a crash's leftovers are
    completed first); counts the decision. Whether anything waits for it is decided in the run, behind any
    run in progress: a decision already applied answers with its outcome, nothing at all with 409."""
    await run.state(session_id)
    metrics.approvals.labels(body.decision).inc()
    return body.as_decision()


PendingDecision = Annotated[Decision, Depends(pending_decision)]


@router.post("/sessions/{session_id}/approval", response_model=ChatResult, responses=DECIDE)
async def decide(session_id: SessionId, decision: PendingDecision, run: RunnerDep) -> ChatResult:
    """Approve, edit (size_lots, stop_loss, take_profit) or reject the pending proposal."""
    queued = await run.copilot.queue_decision(run.user, session_id, decision)  # survives this process
    decide = partial(run.copilot.decide, run.user, session_id, decision, queued)
    try:
        return await run.once(session_id, decision["decision"], decide, queue=True)
    except HTTPException as exc:
        if exc.status_code == 409:  # refused as busy, or cancelled before it ran: not applied
            await run.copilot.drop_decision(run.user, session_id, queued)
        raise


@router.post(
    "/sessions/{session_id}/approval/stream",
    response_class=StreamingResponse,
    description=STREAM_DOC,
    responses=DECIDE_STREAM,
)
async def decide_stream(
    session_id: SessionId, decision: PendingDecision, run: RunnerDep
) -> StreamingResponse:
    """The approval decision, followed live (the order's execution and the model's comment)."""
    queued = await run.copilot.queue_decision(run.user, session_id, decision)  # survives this process
    follow = partial(run.copilot.stream_decision, run.user, session_id, decision, queued)
    try:
        return await run.stream(session_id, decision["decision"], follow, queue=True)
    except HTTPException:  # refused as busy: not applied
        await run.copilot.drop_decision(run.user, session_id, queued)
        raise


async def _locked(
    run: Runner, metrics: Metrics, session_id: str, action: Callable[[str, str], Awaitable[bool]], status: str
) -> StatusResponse:
    await run.state(session_id)
    # Not while a run writes to the thread: changing it mid-run would interleave with its checkpoints.
    async with session_lease(run.locks, metrics, session_id, run.user):
        await action(run.user, session_id)
    return StatusResponse(status=status, session_id=session_id)


# Documented with the seed's form only (session_id in the query, so required there): OpenAPI cannot say
# "in the query or in the body", and the JSON body {"session_id"} is still read for the clients that send it.
SEED_CLEAR_QUERY = {
    "name": "session_id",
    "in": "query",
    "required": True,
    "schema": {"type": "string", "pattern": SESSION_ID_PATTERN},
}


@router.post(
    "/clear_history",
    response_model=StatusResponse,
    responses={**CHANGE, **UNPARSABLE},
    openapi_extra={"parameters": [SEED_CLEAR_QUERY]},
)
async def clear_history(
    request: Request,
    run: RunnerDep,
    metrics: MetricsDep,
    session_id: Annotated[str | None, Query(pattern=SESSION_ID_PATTERN, include_in_schema=False)] = None,
) -> StatusResponse:
    """The seed's endpoint: session_id as a query parameter (seed) or in a JSON body."""
    raw = b"" if session_id else await request.body()
    try:
        sid = session_id or (ClearRequest.model_validate_json(raw).session_id if raw.strip() else None)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    if sid is None:
        raise unprocessable(("query", "session_id"), "session_id is required (query parameter or JSON body)")
    return await _locked(run, metrics, sid, run.copilot.clear, "cleared")


@router.post("/sessions/{session_id}/clear", response_model=StatusResponse, responses=CHANGE)
async def clear_session(session_id: SessionId, run: RunnerDep, metrics: MetricsDep) -> StatusResponse:
    """Forget the conversation's messages; the session id stays usable."""
    return await _locked(run, metrics, session_id, run.copilot.clear, "cleared")


@router.delete("/sessions/{session_id}", response_model=StatusResponse, responses=SESSION)
async def delete_session(session_id: SessionId, run: RunnerDep, metrics: MetricsDep) -> StatusResponse:
    """Remove the session and its checkpoints."""
    return await _locked(run, metrics, session_id, run.copilot.delete, "deleted")
