"""What the nodes need besides state and runtime context: services, settings, model, audit, wall clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from langchain_core.language_models import BaseChatModel

from config import Settings
from graph.audit import AuditTrail
from tools.services import Services


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

    @property
    def prefix(self) -> str:
        return self.settings.redis.prefix
