"""Chat: the seed's POST /api/chat (plus pending_approval) and its Server-Sent Events variant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from graph.recovery.notes import QueuedDecision
from graph.schemas import ChatResult
from graph.slash import DecisionCommand, parse_slash
from server.api.deps import RunnerDep, SettingsDep
from server.api.models import ChatRequest
from server.api.responses import CHAT_STREAM, CHAT_TURN
from server.api.runs import Runner, check_message

router = APIRouter(prefix="/api", tags=["chat"])
T = TypeVar("T")

STREAM_DOC = """Server-Sent Events, in order: `node` {node}, `token` {text}, `tool` {name, args},
`tool_result` {name, ok}, `approval_required` {proposal}, `recovered` {an interrupted run completed first};
the last event is `final` (the /api/chat body) or `error` {message}. The run does not depend on this
connection: if it drops, the run goes on; `GET /api/sessions/{id}/run` re-attaches."""


@router.post("/chat", response_model=ChatResult, responses=CHAT_TURN)
async def chat(body: ChatRequest, run: RunnerDep, settings: SettingsDep) -> ChatResult:
    """Send one message; the answer comes back when the turn is done (or paused for your approval)."""
    check_message(body.message, settings)
    copilot, user, queue = run.copilot, run.user, is_decision(body.message)
    return await noted(
        run,
        body,
        lambda queued: run.once(
            body.session_id,
            "chat",
            lambda: copilot.chat(user, body.session_id, body.message, body.symbol, queued),
            queue,
        ),
    )


@router.post("/chat/stream", response_class=StreamingResponse, description=STREAM_DOC, responses=CHAT_STREAM)
async def chat_stream(body: ChatRequest, run: RunnerDep, settings: SettingsDep) -> StreamingResponse:
    """Send one message and follow the run live."""
    check_message(body.message, settings)
    copilot, user, queue = run.copilot, run.user, is_decision(body.message)
    return await noted(
        run,
        body,
        lambda queued: run.stream(
            body.session_id,
            "chat",
            lambda: copilot.stream(user, body.session_id, body.message, body.symbol, queued),
            queue,
        ),
    )


async def noted(run: Runner, body: ChatRequest, start: Callable[[QueuedDecision | None], Awaitable[T]]) -> T:
    """Start the message's run; a typed decision is noted in Redis first, so it survives this process while
    it waits behind a running turn (graph.recovery), and forgotten when it is refused as busy."""
    queued = None
    if is_decision(body.message):
        queued = await run.copilot.queue_typed_decision(run.user, body.session_id, body.message)
    try:
        return await start(queued)
    except HTTPException as exc:
        if queued is not None and exc.status_code == 409:  # refused as busy, or cancelled: not applied
            await run.copilot.drop_decision(run.user, body.session_id, queued)
        raise


def is_decision(message: str) -> bool:
    """A typed /approve or /reject: queued behind a running turn like the approval endpoint's decisions."""
    return isinstance(parse_slash(message), DecisionCommand)
