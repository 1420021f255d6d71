"""What the nodes need besides state and runtime context: services, settings, model, audit, wall clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from config import Settings
from graph.audit import AuditTrail
from tools.services import Services
from tools.trading_tools import make_tools


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    services: Services
    settings: Settings
    model: BaseChatModel
    audit: AuditTrail
    # Proposal expiry is wall-clock time (the trader's patience), not replay time; injectable for tests.
    now: Callable[[], datetime] = field(default=wall_clock)
    # Per account, built once per process: the tools, and the model with their schemas bound (converting
    # the schemas on every call cost ~11 % of a turn's CPU).
    _tools: dict[str, list[BaseTool]] = field(default_factory=dict, repr=False)
    _bound: dict[str, Runnable[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def prefix(self) -> str:
        return self.settings.redis.prefix

    def tools(self, account_id: str) -> list[BaseTool]:
        if account_id not in self._tools:
            self._tools[account_id] = make_tools(self.services, account_id)
        return self._tools[account_id]

    def bound_model(self, account_id: str) -> Runnable[Any, Any]:
        if account_id not in self._bound:
            self._bound[account_id] = self.model.bind_tools(self.tools(account_id))
        return self._bound[account_id]
