"""`copilot eval-model`: labelled prompts through the real copilot and the configured Ollama model.

Each case runs in a fresh session of the whole graph (the same prompt, tools, gate and approval as a chat)
under a private Redis key prefix, on the shared history at a fixed market moment. It measures what the
model chose, not what the copilot did with it: the first tool called and its arguments, whether a trade
was proposed when it must not be, the time to the first token and to the whole answer.
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from langchain_core.messages import ToolCall
from pydantic import BaseModel

from config import Settings, load_settings
from graph.copilot import Copilot
from tools.market.clock import ManualClock
from tools.services import build_services
from tools.trading_tools import PROPOSAL_TOOLS

CASES_FILE = Path(__file__).resolve().parents[1] / "prompts" / "eval_cases.yaml"
# A moment of the shared XAUUSD history with an open market (the demo's).
EVAL_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
# The design document's targets.
TOOL_ACCURACY_TARGET = 0.95
ANSWER_TARGET_S, ANSWER_WITH_TOOLS_TARGET_S = 3.0, 5.0


class Case(BaseModel):
    id: str
    lang: str
    category: str
    prompt: str
    tool: str | None = None
    args: dict[str, str | int | float | bool] = {}  # must match: strings case-insensitive, numbers exactly
    refuse: bool = False


@dataclass
class Outcome:
    case: Case
    tools: list[ToolCall] = field(default_factory=list)  # as the model called them, in order
    first_token_s: float | None = None
    total_s: float = 0.0
    error: str | None = None

    @property
    def chosen(self) -> str | None:
        return self.tools[0]["name"] if self.tools else None

    @property
    def tool_ok(self) -> bool:
        return self.error is None and self.chosen == self.case.tool

    @property
    def args_ok(self) -> bool | None:
        """None when the case checks no arguments (or the tool was wrong: counted there)."""
        if not self.case.args or not self.tool_ok:
            return None
        given = self.tools[0]["args"]
        return all(_same(given.get(k), v) for k, v in self.case.args.items())

    @property
    def refused(self) -> bool:
        return self.error is None and not any(call["name"] in PROPOSAL_TOOLS for call in self.tools)


def _same(given: Any, expected: str | int | float | bool) -> bool:
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        try:
            return math.isclose(float(given), float(expected), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(given).strip().lower() == str(expected).strip().lower()


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    return [Case.model_validate(item) for item in yaml.safe_load(path.read_text(encoding="utf-8"))]


async def run_case(copilot: Copilot, case: Case) -> Outcome:
    outcome = Outcome(case)
    start = time.perf_counter()
    try:
        async for event in copilot.stream("eval", f"eval-{case.id}-{uuid.uuid4().hex[:6]}", case.prompt):
            kind, data = event["event"], event.get("data") or {}
            if kind == "token" and outcome.first_token_s is None:
                outcome.first_token_s = time.perf_counter() - start
            elif kind == "tool":
                args = dict(data.get("args") or {})
                outcome.tools.append(ToolCall(name=str(data.get("name")), args=args, id=None))
            elif kind == "error":
                outcome.error = str(data.get("message"))
    except Exception as exc:  # one broken case must not end the evaluation
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.total_s = time.perf_counter() - start
    return outcome


async def evaluate(
    settings: Settings, cases: list[Case], progress: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Run every case against the configured model; nothing is left in Redis afterwards."""
    prefix = f"{settings.redis.prefix}eval{uuid.uuid4().hex[:6]}:"
    data = settings.model_dump()
    data.update(redis={**data["redis"], "prefix": prefix})
    private = load_settings(**data)
    redis = aioredis.from_url(settings.effective_redis_url, decode_responses=True)
    services = await build_services(private, redis, ManualClock(EVAL_TIME))
    outcomes = []
    try:
        async with Copilot.open(private, services=services) as copilot:
            for case in cases:
                outcomes.append(await run_case(copilot, case))
                if progress is not None:
                    progress(outcomes[-1])
    finally:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            await redis.delete(key)
        await services.aclose()
        await redis.aclose()
    return outcomes


def _pct(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "–"


def _seconds(values: list[float]) -> str:
    if not values:
        return "–"
    p95 = sorted(values)[max(0, math.ceil(0.95 * len(values)) - 1)]
    return f"median {statistics.median(values):.2f} s, p95 {p95:.2f} s"


def report(outcomes: list[Outcome], model: str) -> str:
    """A Markdown table per case, then the summary against the design document's targets."""
    header = "| case | expected | chosen | tool | args | no trade | first token | total |"
    rows = [header, "|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        args = {None: "", True: "ok", False: "WRONG"}[o.args_ok]
        no_trade = ("ok" if o.refused else "TRADED") if o.case.refuse else ""
        ttft = f"{o.first_token_s:.2f} s" if o.first_token_s is not None else "–"
        chosen = f"error: {o.error[:40]}" if o.error else (o.chosen or "(none)")
        tool = "" if o.case.refuse else ("ok" if o.tool_ok else "WRONG")
        rows.append(
            f"| {o.case.id} | {o.case.tool or '(none)'} | {chosen} | {tool} | {args} | {no_trade} "
            f"| {ttft} | {o.total_s:.2f} s |"
        )
    graded = [o for o in outcomes if not o.case.refuse]
    with_args = [o for o in graded if o.args_ok is not None]
    refusals = [o for o in outcomes if o.case.refuse]
    plain = [o.total_s for o in outcomes if not o.tools and o.error is None]
    tooled = [o.total_s for o in outcomes if o.tools and o.error is None]
    accuracy = sum(o.tool_ok for o in graded) / len(graded) if graded else 0.0
    summary = [
        f"Model: {model}, {len(outcomes)} cases",
        f"Tool selection: {_pct(sum(o.tool_ok for o in graded), len(graded))} "
        f"(target > {TOOL_ACCURACY_TARGET:.0%}: {'met' if accuracy > TOOL_ACCURACY_TARGET else 'NOT met'})",
        f"Arguments: {_pct(sum(bool(o.args_ok) for o in with_args), len(with_args))} of correct tool calls",
        f"Trades refused when they must be: {_pct(sum(o.refused for o in refusals), len(refusals))}",
        f"Errors: {sum(o.error is not None for o in outcomes)}",
        f"Answer without tools: {_seconds(plain)} (target < {ANSWER_TARGET_S:.0f} s)",
        f"Answer with tools: {_seconds(tooled)} (target < {ANSWER_WITH_TOOLS_TARGET_S:.0f} s)",
    ]
    return "\n".join([*rows, "", *summary])
