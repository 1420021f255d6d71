"""What the nodes share: their dependencies (services, settings, model, audit, wall clock), their type, and
the helpers more than one node uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.config import get_config
from langgraph.runtime import Runtime

from config import Settings
from graph.audit import AuditTrail
from graph.state import State
from prompts.system import schema_tokens
from tools.context import Context
from tools.services import Services
from tools.trading_tools import make_tools


class Node(Protocol):
    """A node of the copilot's graph: the state and the run's runtime in, the state update out (the shape
    LangGraph's StateGraph.add_node types as a node with a runtime)."""

    def __call__(self, state: State, runtime: Runtime[Context]) -> Awaitable[State]: ...


def wall_clock() -> datetime:
    return datetime.now(UTC)


def run_thread_id() -> str:
    """The running thread's id (from the run config; the runtime context carries only user facts)."""
    return str(get_config().get("configurable", {}).get("thread_id", ""))


@dataclass
class Deps:
    services: Services
    settings: Settings
    model: BaseChatModel
    audit: AuditTrail
    # Proposal expiry is wall-clock time (the trader's patience), not replay time; injectable for tests.
    now: Callable[[], datetime] = field(default=wall_clock)

    @property
    def prefix(self) -> str:
        return self.settings.redis.prefix

    # Built once per process (each call's account comes from its runtime context): the tools, the model
    # with their schemas bound (converting the schemas on every call cost ~11 % of a turn's CPU) and the
    # tokens those schemas take in the model's context.
    @cached_property
    def tools(self) -> list[BaseTool]:
        return make_tools(self.services)

    @cached_property
    def bound_model(self) -> Runnable[Any, Any]:
        return self.model.bind_tools(self.tools)

    @cached_property
    def tool_tokens(self) -> int:
        return schema_tokens(self.tools)

    def portfolio_key(self, account_id: str) -> str:
        """The cached portfolio snapshot of the live context (graph.nodes.load_context)."""
        return f"{self.prefix}ctx:portfolio:{account_id}"

    async def invalidate_portfolio(self, account_id: str) -> None:
        """After an order the cached snapshot is stale; the next turn must see the new position."""
        await self.services.redis.delete(self.portfolio_key(account_id))
