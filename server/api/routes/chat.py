"""Chat: the seed's POST /api/chat (plus pending_approval) and its Server-Sent Events variant."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from graph.schemas import ChatResult
from server.api.deps import CopilotDep, CurrentUser, LocksDep, MetricsDep, SettingsDep
from server.api.models import ChatRequest
from server.api.runs import check_message, run_once, stream_response

router = APIRouter(prefix="/api", tags=["chat"])

STREAM_DOC = """Server-Sent Events, in order: `node` {node}, `token` {text}, `tool` {name, args},
`tool_result` {name, ok}, `approval_required` {proposal}; the last event is `final` (the /api/chat body)
or `error` {message}."""


@router.post("/chat", response_model=ChatResult)
async def chat(
    body: ChatRequest,
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    metrics: MetricsDep,
    settings: SettingsDep,
) -> ChatResult:
    """Send one message; the answer comes back when the turn is done (or paused for your approval)."""
    check_message(body.message, settings)
    result: ChatResult = await run_once(
        locks,
        metrics,
        user,
        body.session_id,
        "chat",
        lambda: copilot.chat(user, body.session_id, body.message, body.symbol),
    )
    return result


@router.post("/chat/stream", response_class=StreamingResponse, description=STREAM_DOC)
async def chat_stream(
    body: ChatRequest,
    user: CurrentUser,
    copilot: CopilotDep,
    locks: LocksDep,
    metrics: MetricsDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """Send one message and follow the run live."""
    check_message(body.message, settings)
    return await stream_response(
        locks,
        metrics,
        user,
        body.session_id,
        "chat",
        lambda: copilot.stream(user, body.session_id, body.message, body.symbol),
    )
