"""Entry point for LangGraph Studio and `langgraph dev` (langgraph.json): the graph without our saver.

`langgraph dev` brings its own checkpointer and calls the factory for each run, so the services (market
data, signals, paper broker on Redis) are built once per process and reused. Settings come from the usual
env vars / COPILOT_CONFIG; the model is ChatOllama from settings (start Ollama first).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from config import load_settings
from graph.builder import build_graph
from graph.llm import build_chat_model
from tools.services import Services, build_services

_services: Services | None = None


async def _shared_services() -> Services:
    global _services
    if _services is None:
        settings = load_settings()
        redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
        _services = await build_services(settings, redis)
    return _services


async def make_graph(config: RunnableConfig) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Graph factory named in langgraph.json; the runtime context (graph.context.Context) is set per run."""
    services = await _shared_services()
    settings = services.settings
    return build_graph(services, settings, build_chat_model(settings)).compile()
