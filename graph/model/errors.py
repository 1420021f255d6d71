"""Why a model call failed, in words a trader can act on: one category per failure, and a small in-process
window of recent chat outcomes so the health check reflects whether chatting works."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings


class FailureCategory(StrEnum):
    """Why a model call failed; the health check, the logs and the trader's message use these."""

    DOWN = "down"  # the server is not reachable or failed before answering
    SLOW = "slow"  # no answer (or no next chunk) within llm.request_timeout
    MODEL_MISSING = "model_missing"  # the model is not installed, or cannot do what the mode needs
    TRUNCATED = "truncated"  # the answer stopped before its end: no `done` chunk, done_reason "length", cut
    BAD_REPLY = "bad_reply"  # a reply that cannot be used (unreadable, unknown tool, malformed arguments)
    OVERLOADED = "overloaded"  # the server refused for load (HTTP 503/429, "server busy")


class ModelUnavailable(Exception):
    """A model call that gave no usable answer. str() is the trader-facing explanation (what happened and
    what to do), `category` the FailureCategory."""

    def __init__(self, message: str, category: FailureCategory = FailureCategory.DOWN) -> None:
        super().__init__(message)
        self.category = FailureCategory(category)

    @property
    def message(self) -> str:
        return str(self)

    @classmethod
    def unexpected(cls, exc: BaseException) -> ModelUnavailable:
        """Any other failure of a model call, named without its internals (the log has those)."""
        return cls(
            f"the model call failed unexpectedly ({type(exc).__name__}); the server log has the details",
            FailureCategory.BAD_REPLY,
        )


# ---------------------------------------------------------------- recent chat outcomes (for /api/health)


@dataclass
class ChatOutcomes:
    """The last `size` chat calls of one model on one server (within `max_age_s`), in this process."""

    size: int = 5
    max_age_s: float = 300.0
    calls: deque[tuple[float, ModelUnavailable | None]] = field(default_factory=deque)

    def record(self, failure: ModelUnavailable | None) -> None:
        self.calls.append((time.monotonic(), failure))
        while len(self.calls) > self.size:
            self.calls.popleft()

    def recent(self) -> list[ModelUnavailable | None]:
        oldest = time.monotonic() - self.max_age_s
        return [outcome for at, outcome in self.calls if at >= oldest]

    def failing(self) -> ModelUnavailable | None:
        """The latest failure when the last call failed or most recent calls did; None when chat works."""
        recent = self.recent()
        failures = [f for f in recent if f is not None]
        if not failures or (recent[-1] is None and 2 * len(failures) <= len(recent)):
            return None
        return failures[-1]


_OUTCOMES: dict[tuple[str, str], ChatOutcomes] = {}


def chat_outcomes(base_url: str, model: str) -> ChatOutcomes:
    return _OUTCOMES.setdefault((base_url.rstrip("/"), model), ChatOutcomes())


def recent_chat_failure(settings: Settings) -> ModelUnavailable | None:
    """The failure that makes chat look broken right now (see ChatOutcomes.failing), if any."""
    return chat_outcomes(settings.llm.base_url, settings.llm.model).failing()


def reset_chat_outcomes() -> None:
    """Forget every recorded outcome (tests)."""
    _OUTCOMES.clear()


# ---------------------------------------------------------------- messages


def down_message(base_url: str) -> str:
    return (
        f"the model server at {base_url} is not reachable (is Ollama running? `ollama serve`). "
        "Slash commands such as /signal or /portfolio still work (/help)."
    )


def missing_message(model: str, base_url: str) -> str:
    if model.endswith("-copilot"):  # the derived model (graph/model/ollama_model.py), since deleted
        return f"model '{model}' is not installed on {base_url}: run `copilot model install` and restart"
    return f"model '{model}' is not installed on {base_url}: run `ollama pull {model}`"


def slow_message(base_url: str, timeout: float | None) -> str:
    limit = f" ({timeout:g} s, llm.request_timeout)" if timeout else ""
    return (
        f"the model server at {base_url} did not answer within the timeout{limit}; it may still be loading "
        "the model or be busy: try again in a moment"
    )


def overloaded_message(base_url: str, detail: str) -> str:
    return f"the model server at {base_url} is overloaded ({detail}): try again in a moment"


def cut_message(how: str) -> str:
    return f"the answer was cut off before its end ({how}); nothing of it was kept: ask again"


def too_long_message(num_predict: int | None) -> str:
    limit = f"{num_predict} tokens, " if num_predict else ""
    return (
        f"the answer was cut off at the length limit ({limit}inference.max_tokens, or the context window "
        "llm.num_ctx): ask for a shorter answer, or raise inference.max_tokens"
    )


def bad_reply_message(problem: str, retried: bool) -> str:
    told = ", also after it was told what was wrong" if retried else ""
    return (
        f"the model's reply could not be used ({problem}){told}; "
        "ask again in other words, or use a slash command (/help)"
    )
