"""Liveness for operators: GET /api/health (model server and Redis status) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.deps import MetricsDep
from server.api.models import HealthResponse

router = APIRouter(tags=["health"])
log = logging.getLogger("copilot.server")

CHECK_TIMEOUT_SECONDS = 3.0


async def _llm_status(request: Request) -> str:
    copilot = getattr(request.app.state, "copilot", None)
    if copilot is None:
        return "starting"
    try:
        return str(await asyncio.wait_for(copilot.model_status(), CHECK_TIMEOUT_SECONDS))
    except Exception as exc:  # a health check reports, it never fails
        log.warning("model status check failed: %s", exc)
        return "down"


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


@router.get("/api/health", response_model=HealthResponse)
async def health(request: Request) -> HealthResponse:
    """`healthy` when the model server and Redis both answer; `degraded` otherwise (slash commands still work
    without the model)."""
    llm, redis = await asyncio.gather(_llm_status(request), _redis_status(request))
    status = "healthy" if llm == "ok" and redis == "ok" else "degraded"
    return HealthResponse(status=status, llm_status=llm, redis_status=redis)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
