"""Sessions of the current user: list, state, checkpoint history, approval decisions, clear, delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import StreamingResponse

from graph.copilot import Copilot, NoPendingApproval
from graph.schemas import ChatResult, CheckpointInfo, SessionState
from server.api.deps import (
    SESSION_ID_PATTERN,
    CopilotDep,
    CurrentUser,
    LocksDep,
    MetricsDep,
    RunsDep,
    SessionId,
)
from server.api.models import ClearRequest, DecisionRequest, SessionList, StatusResponse
from server.api.routes.chat import STREAM_DOC
from server.api.runs import (
    NOTHING_PENDING,
    busy,
    follow_response,
    run_to_end,
    session_lease,
    settled_state,
    stream_run,
)
from server.metrics import Metrics
from tools.locks import RunLocks

router = APIRouter(prefix="/api", tags=["sessions"])

NOT_FOUND = "no such session for this user"


async def require_state(copilot: Copilot, locks: RunLocks, user: str, session_id: str) -> SessionState:
    """Sessions are per user: someone else's session id answers 404, exactly like an unknown one. A run a
    crash interrupted is completed first (when no run holds the session)."""
    state = await settled_state(copilot, locks, user, session_id)
    if state is None:
        raise HTTPException(404, NOT_FOUND)
    return state


@router.get("/sessions", response_model=SessionList)
async def list_sessions(user: CurrentUser, copilot: CopilotDep) -> SessionList:
    return SessionList(sessions=await copilot.sessions(user))


@router.get("/sessions/{session_id}", response_model=SessionState)
async def get_session(
    session_id: SessionId, user: CurrentUser, copilot: CopilotDep, locks: LocksDep
) -> SessionState:
    """The session's messages, pending approval and last signal."""
    return await require_state(copilot, locks, user, session_id)


@router.get("/sessions/{session_id}/history", response_model=list[CheckpointInfo])
async def get_history(
    session_id: SessionId,
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    limit: int = Query(20, ge=1, le=200),
) -> list[CheckpointInfo]:
    """The session's checkpoints, newest first."""
    await require_state(copilot, locks, user, session_id)
    return await copilot.history(user, session_id, limit=limit)


@router.get("/sessions/{session_id}/history/{checkpoint_id}", response_model=SessionState)
async def get_checkpoint(
    session_id: SessionId, checkpoint_id: str, user: CurrentUser, copilot: CopilotDep, locks: LocksDep
) -> SessionState:
    await require_state(copilot, locks, user, session_id)
    state = await copilot.checkpoint(user, session_id, checkpoint_id)
    if state is None:
        raise HTTPException(404, "no such checkpoint in this session")
    return state


@router.get("/sessions/{session_id}/run", response_class=StreamingResponse, description=STREAM_DOC)
async def follow_run(
    session_id: SessionId, user: CurrentUser, copilot: CopilotDep, runs: RunsDep, locks: LocksDep
) -> StreamingResponse:
    """Re-attach to the session's run in progress: its events from the first, then live until it ends."""
    run = runs.current(user, session_id)
    if run is not None:
        return follow_response(run)
    if await locks.redis.exists(locks.key(user, session_id)):
        raise busy(session_id, await locks.busy_for(user, session_id))  # on another server process
    await require_state(copilot, locks, user, session_id)
    raise HTTPException(404, f"no run in progress; GET /api/sessions/{session_id} has the latest result")


@router.post("/sessions/{session_id}/cancel", response_model=StatusResponse)
async def cancel_run(
    session_id: SessionId, user: CurrentUser, copilot: CopilotDep, runs: RunsDep, locks: LocksDep
) -> StatusResponse:
    """Stop the session's run. The thread keeps its last checkpoint; an approval already recorded is still
    carried out (reconciled) at the next access. `cancelling`: another server process runs it."""
    status = await runs.cancel(user, session_id)
    if status is None:
        await require_state(copilot, locks, user, session_id)
        raise HTTPException(409, "no run is in progress for this session")
    return StatusResponse(status=status, session_id=session_id)


async def require_pending(
    copilot: Copilot, locks: RunLocks, metrics: Metrics, user: str, session_id: str, body: DecisionRequest
) -> None:
    """404 for another user's (or no) session, 409 when nothing waits for a decision; counts the decision."""
    state = await require_state(copilot, locks, user, session_id)
    if state.pending_approval is None and not state.interrupted_run:
        raise HTTPException(409, NOTHING_PENDING)
    metrics.approvals.labels(body.decision).inc()


@router.post("/sessions/{session_id}/approval", response_model=ChatResult)
async def decide(
    session_id: SessionId,
    body: DecisionRequest,
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    runs: RunsDep,
    metrics: MetricsDep,
) -> ChatResult:
    """Approve, edit (size_lots, stop_loss, take_profit) or reject the pending proposal."""
    await require_pending(copilot, locks, metrics, user, session_id, body)
    try:
        return await run_to_end(
            runs,
            user,
            session_id,
            body.decision,
            lambda: copilot.decide(user, session_id, body.as_decision()),
        )
    except NoPendingApproval:
        raise HTTPException(409, NOTHING_PENDING) from None


@router.post(
    "/sessions/{session_id}/approval/stream", response_class=StreamingResponse, description=STREAM_DOC
)
async def decide_stream(
    session_id: SessionId,
    body: DecisionRequest,
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    runs: RunsDep,
    metrics: MetricsDep,
) -> StreamingResponse:
    """The approval decision, followed live (the order's execution and the model's comment)."""
    await require_pending(copilot, locks, metrics, user, session_id, body)
    return await stream_run(
        runs,
        user,
        session_id,
        body.decision,
        lambda: copilot.stream_decision(user, session_id, body.as_decision()),
    )


async def _locked(
    copilot: Copilot,
    locks: RunLocks,
    metrics: Metrics,
    user: str,
    session_id: str,
    action: Callable[[str, str], Awaitable[bool]],
    status: str,
) -> StatusResponse:
    await require_state(copilot, locks, user, session_id)
    # Not while a run writes to the thread: changing it mid-run would interleave with its checkpoints.
    async with session_lease(locks, metrics, session_id, user):
        await action(user, session_id)
    return StatusResponse(status=status, session_id=session_id)


@router.post("/clear_history", response_model=StatusResponse)
async def clear_history(
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    metrics: MetricsDep,
    session_id: Annotated[str | None, Query(pattern=SESSION_ID_PATTERN)] = None,
    body: Annotated[ClearRequest | None, Body()] = None,
) -> StatusResponse:
    """The seed's endpoint: session_id as a query parameter (seed) or in a JSON body."""
    sid = session_id or (body.session_id if body else None)
    if sid is None:
        raise HTTPException(422, "session_id is required (query parameter or JSON body)")
    return await _locked(copilot, locks, metrics, user, sid, copilot.clear, "cleared")


@router.post("/sessions/{session_id}/clear", response_model=StatusResponse)
async def clear_session(
    session_id: SessionId, user: CurrentUser, copilot: CopilotDep, locks: LocksDep, metrics: MetricsDep
) -> StatusResponse:
    """Forget the conversation's messages; the session id stays usable."""
    return await _locked(copilot, locks, metrics, user, session_id, copilot.clear, "cleared")


@router.delete("/sessions/{session_id}", response_model=StatusResponse)
async def delete_session(
    session_id: SessionId, user: CurrentUser, copilot: CopilotDep, locks: LocksDep, metrics: MetricsDep
) -> StatusResponse:
    """Remove the session and its checkpoints."""
    return await _locked(copilot, locks, metrics, user, session_id, copilot.delete, "deleted")
