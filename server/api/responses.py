"""The API's one error shape and the responses routes can give, declared once for every route's `responses=`.

Every 422 is FastAPI's `HTTPValidationError`: `detail` is a list of `{loc, msg, type}`, also for the checks
the code makes itself (`unprocessable`). Every other error is `{"detail": "a sentence"}` (`ErrorMessage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from server.api.streams import LIVE_EVENTS, RUN_EVENTS, sse_response


class ErrorMessage(BaseModel):
    """Every error but a 422: one sentence saying what went wrong and what to do about it."""

    detail: str = Field(description="what went wrong, in words a user can act on")


def unprocessable(loc: Sequence[str | int], msg: str) -> RequestValidationError:
    """A 422 the code decides (not pydantic), in the same `HTTPValidationError` shape as pydantic's."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": "value_error"}])


def validation_detail(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`{loc, msg, type}` per error: the input is never echoed (it may be a secret, or NaN, which JSON has
    no word for)."""
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "value_error")),
        }
        for err in errors
    ]


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
Responses = dict[int | str, dict[str, Any]]


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"model": ErrorMessage, "description": description}
    if headers:
        answer["headers"] = headers
    return answer


TOO_LARGE: Responses = {413: _error("the body is larger than `server.max_body_bytes`")}
UNPARSABLE: Responses = {
    400: _error("the body could not be read as the declared content type"),
    **TOO_LARGE,
}
UNAUTHORIZED: Responses = {401: _error("no API key, or one that is not configured")}
NOT_FOUND: Responses = {404: _error("no such session, checkpoint or symbol for this user")}
BUSY: Responses = {
    409: _error(
        "a run holds the session (`Retry-After`: when to try again), or nothing in it waits for this",
        {"Retry-After": {**RETRY_AFTER["Retry-After"], "required": False}},
    )
}
UPSTREAM: Responses = {
    501: _error("this broker does not report that"),
    502: _error("the market data, signal or trading service failed"),
}
UNAVAILABLE: Responses = {503: _error("Redis is unavailable, or the copilot is starting", RETRY_AFTER)}


def _session_link(path: str, method: str, description: str) -> dict[str, Any]:
    pointer = path.replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": {"session_id": "$request.body#/session_id"},
        "description": description,
    }


# A chat turn's session is what the session routes take: the links say so (clients and schemathesis's
# stateful phase follow them).
SESSION_LINKS = {
    "GetSession": _session_link("/api/sessions/{session_id}", "get", "the session this turn wrote to"),
    "GetHistory": _session_link("/api/sessions/{session_id}/history", "get", "its checkpoints"),
    "FollowRun": _session_link("/api/sessions/{session_id}/run", "get", "its run, while it goes on"),
    "Decide": _session_link("/api/sessions/{session_id}/approval", "post", "decide its pending proposal"),
    "Cancel": _session_link("/api/sessions/{session_id}/cancel", "post", "stop its run"),
    "Clear": _session_link("/api/sessions/{session_id}/clear", "post", "forget its messages"),
    "Delete": _session_link("/api/sessions/{session_id}", "delete", "remove it"),
}

# What a route can answer, by what it does (422s FastAPI declares itself, as HTTPValidationError).
READ: Responses = {**UNAUTHORIZED, **UNAVAILABLE}  # any authenticated request
BROKER: Responses = {**READ, **UPSTREAM}  # reads the account or the market
SYMBOL: Responses = {**BROKER, **NOT_FOUND}  # ... of one symbol
SESSION: Responses = {**READ, **NOT_FOUND, **BUSY}  # reads one session (a crash's leftovers first)
CHANGE: Responses = {**SESSION, **TOO_LARGE}  # a POST that changes a session
CHAT: Responses = {**READ, **BUSY, **UNPARSABLE, **UPSTREAM}  # a graph run from a JSON body
CHAT_TURN: Responses = {**CHAT, 200: {"description": "the turn's result", "links": SESSION_LINKS}}
DECIDE: Responses = {**CHAT, **NOT_FOUND}  # ... on an existing session

# The streaming routes: the same errors (as JSON, before the stream starts), then the frames.
RUN_STREAM = sse_response(RUN_EVENTS, "the run's events as they happen; the last one is `final` or `error`")
CHAT_STREAM: Responses = {**CHAT, 200: {**RUN_STREAM, "links": SESSION_LINKS}}
DECIDE_STREAM: Responses = {**DECIDE, 200: RUN_STREAM}
FOLLOW: Responses = {**SESSION, 200: RUN_STREAM}
LIVE: Responses = {**READ, 200: sse_response(LIVE_EVENTS, "the account's live feed for about 30 s")}
