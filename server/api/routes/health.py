"""Liveness for operators: GET /api/health (model server and Redis status) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from graph.model.errors import recent_chat_failure
from server.api.deps import MetricsDep, MetricsReader
from server.api.models import HealthResponse

router = APIRouter(tags=["health"])
log = logging.getLogger("copilot.server")

CHECK_TIMEOUT_SECONDS = 3.0


async def _llm_status(request: Request) -> tuple[str, str | None]:
    """The model's status and, when recent chat calls failed, the latest failure ("<category>: <message>")."""
    copilot = getattr(request.app.state, "copilot", None)
    if copilot is None:
        return "starting", None
    try:
        status = str(await asyncio.wait_for(copilot.model_status(), CHECK_TIMEOUT_SECONDS))
    except Exception as exc:  # a health check reports, it never fails
        log.warning("model status check failed: %s", exc)
        return "down", None
    settings = getattr(copilot, "settings", None)
    failure = recent_chat_failure(settings) if status == "failing" and settings is not None else None
    return status, (f"{failure.category.value}: {failure}" if failure is not None else None)


async def _redis_status(request: Request) -> str:
    redis = getattr(request.app.state, "redis", None)
    if redis is None:
        return "starting"
    try:
        await asyncio.wait_for(redis.ping(), CHECK_TIMEOUT_SECONDS)
        return "ok"
    except Exception as exc:
        log.warning("redis ping failed: %s", exc)
        return "down"


@router.get("/api/health", response_model=HealthResponse, response_model_exclude_none=True)
async def health(request: Request) -> HealthResponse:
    """`healthy` when the model server and Redis both answer and recent chat calls worked; `degraded`
    otherwise (slash commands still work without the model). `llm_status` "failing" means /api/show answers
    but the last chat call failed, or most of the recent ones did (`llm_error` says how)."""
    (llm, llm_error), redis = await asyncio.gather(_llm_status(request), _redis_status(request))
    status = "healthy" if llm == "ok" and redis == "ok" else "degraded"
    return HealthResponse(status=status, llm_status=llm, redis_status=redis, llm_error=llm_error)


@router.get("/metrics", include_in_schema=False, dependencies=[MetricsReader])
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
