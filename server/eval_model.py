"""`copilot eval-model`: labelled prompts through the real copilot and the configured model (any provider:
Ollama, or an OpenAI-compatible server).

Each case runs in a fresh session of the whole graph (the same prompt, tools, gate and approval as a chat)
under a private Redis key prefix, on the shared history at a fixed market moment. It measures what the
model chose, not what the copilot did with it: the first tool called and its arguments, whether a trade
was proposed when it must not be, the language of the model's own answer text against the prompt's, the
time to the first token and to the whole answer. `write_results` keeps it all as JSON.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import ToolCall
from pydantic import BaseModel

from config import Settings, load_settings
from graph.copilot import Copilot
from graph.nodes.reason import MODEL_DOWN, MODEL_UNUSABLE
from tools.market.clock import ManualClock
from tools.redis_clients import async_client
from tools.services import build_services
from tools.trading_tools import PROPOSAL_TOOLS

CASES_FILE = Path(__file__).resolve().parents[1] / "prompts" / "eval_cases.yaml"
# A moment of the shared XAUUSD history with an open market (the demo's).
EVAL_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
# The design document's targets.
TOOL_ACCURACY_TARGET = 0.95
ANSWER_TARGET_S, ANSWER_WITH_TOOLS_TARGET_S = 3.0, 5.0
MODEL_FAILED = [template.split("{")[0] for template in (MODEL_DOWN, MODEL_UNUSABLE)]


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
    answer: str = ""  # the model's streamed text (not the copilot's own proposal or fallback wording)
    model_failure: str | None = None  # the copilot's fallback message when a model reply was unusable

    @property
    def language(self) -> str | None:
        return answer_language(self.answer)

    @property
    def language_ok(self) -> bool | None:
        """None when there is no answer text to judge."""
        said = self.language
        return None if said is None or self.error else said == self.case.lang

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


# Function words that are frequent in one language and rare in the other (accents stripped words stay apart).
_WORDS = {
    "es": set(
        "el la los las de del que y en un una es por con para no se su al lo como más pero sus le ya o "
        "este sí porque esta muy sin sobre también me hay donde quien desde todo nos cuando puedo está "
        "tu tus mi señal precio cuenta operación mercado".split()
    ),
    "en": set(
        "the of and to in is you that it for on with as are this be at by or from your can will an "
        "not have has but what all would there their which my if do signal price account trade market".split()
    ),
}


def answer_language(text: str) -> str | None:
    """ "es" or "en" by function words (¿ ¡ ñ count for Spanish), None when the text says too little."""
    words = re.findall(r"[a-záéíóúüñ]+", text.lower())
    score = {lang: sum(w in vocab for w in words) for lang, vocab in _WORDS.items()}
    score["es"] += 2 * sum(text.count(c) for c in "¿¡ñ")
    if max(score.values()) < 2 or score["es"] == score["en"]:
        return None
    return max(score, key=lambda lang: score[lang])


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    return [Case.model_validate(item) for item in yaml.safe_load(path.read_text(encoding="utf-8"))]


async def run_case(copilot: Copilot, case: Case) -> Outcome:
    outcome = Outcome(case)
    start = time.perf_counter()
    try:
        async for event in copilot.stream("eval", f"eval-{case.id}-{uuid.uuid4().hex[:6]}", case.prompt):
            kind, data = event["event"], event.get("data") or {}
            if kind == "token":
                if outcome.first_token_s is None:
                    outcome.first_token_s = time.perf_counter() - start
                outcome.answer += str(data.get("text") or "")
            elif kind == "tool":
                args = dict(data.get("args") or {})
                outcome.tools.append(ToolCall(name=str(data.get("name")), args=args, id=None))
            elif kind == "error":
                outcome.error = str(data.get("message"))
            elif kind == "final":
                said = str(data.get("response") or "")
                failure = next((said[said.find(m) :] for m in MODEL_FAILED if m in said), None)
                if failure is not None:  # the copilot's own fallback: the model's reply was not usable
                    outcome.model_failure = failure[:300]
                    if not outcome.tools:  # no choice was made: the case failed (a chosen tool stands)
                        outcome.error = outcome.model_failure
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
    redis = async_client(settings.effective_redis_url)
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


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """The figures the report's last lines and the JSON file give: counts, shares and latency."""
    graded = [o for o in outcomes if not o.case.refuse]
    with_args = [o for o in graded if o.args_ok is not None]
    refusals = [o for o in outcomes if o.case.refuse]
    judged = [o for o in outcomes if o.language_ok is not None]

    def share(hits: int, total: int) -> dict[str, Any]:
        return {"hits": hits, "total": total, "share": hits / total if total else None}

    def seconds(values: list[float]) -> dict[str, float | None]:
        ordered = sorted(values)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else None
        return {"median": statistics.median(ordered) if ordered else None, "p95": p95, "n": len(ordered)}

    return {
        "cases": len(outcomes),
        "tool_selection": share(sum(o.tool_ok for o in graded), len(graded)),
        "arguments": share(sum(bool(o.args_ok) for o in with_args), len(with_args)),
        "refused": share(sum(o.refused for o in refusals), len(refusals)),
        "language": share(sum(bool(o.language_ok) for o in judged), len(judged)),
        "errors": sum(o.error is not None for o in outcomes),
        "model_failures": sum(o.model_failure is not None for o in outcomes),
        "first_token_s": seconds([o.first_token_s for o in outcomes if o.first_token_s is not None]),
        "answer_s": seconds([o.total_s for o in outcomes if not o.tools and o.error is None]),
        "answer_with_tools_s": seconds([o.total_s for o in outcomes if o.tools and o.error is None]),
    }


def _pct_of(figure: dict[str, Any]) -> str:
    return _pct(figure["hits"], figure["total"])


def report(outcomes: list[Outcome], model: str) -> str:
    """A Markdown table per case, then the summary against the design document's targets."""
    header = "| case | expected | chosen | tool | args | no trade | lang | first token | total |"
    rows = [header, "|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        args = {None: "", True: "ok", False: "WRONG"}[o.args_ok]
        no_trade = ("error" if o.error else "ok" if o.refused else "TRADED") if o.case.refuse else ""
        lang = {None: "", True: "ok", False: f"WRONG ({o.language})"}[o.language_ok]
        ttft = f"{o.first_token_s:.2f} s" if o.first_token_s is not None else "–"
        chosen = f"error: {o.error[:40]}" if o.error else (o.chosen or "(none)")
        tool = "" if o.case.refuse else ("ok" if o.tool_ok else "WRONG")
        rows.append(
            f"| {o.case.id} | {o.case.tool or '(none)'} | {chosen} | {tool} | {args} | {no_trade} | {lang} "
            f"| {ttft} | {o.total_s:.2f} s |"
        )
    figures = summary(outcomes)
    plain = [o.total_s for o in outcomes if not o.tools and o.error is None]
    tooled = [o.total_s for o in outcomes if o.tools and o.error is None]
    accuracy = figures["tool_selection"]["share"] or 0.0
    lines = [
        f"Model: {model}, {len(outcomes)} cases",
        f"Tool selection: {_pct_of(figures['tool_selection'])} "
        f"(target > {TOOL_ACCURACY_TARGET:.0%}: {'met' if accuracy > TOOL_ACCURACY_TARGET else 'NOT met'})",
        f"Arguments: {_pct_of(figures['arguments'])} of correct tool calls",
        f"Trades refused when they must be: {_pct_of(figures['refused'])} (an error is no refusal)",
        f"Answer in the prompt's language: {_pct_of(figures['language'])} of answers with text to judge",
        f"Errors: {figures['errors']} (model replies the copilot could not use: {figures['model_failures']})",
        f"Answer without tools: {_seconds(plain)} (target < {ANSWER_TARGET_S:.0f} s)",
        f"Answer with tools: {_seconds(tooled)} (target < {ANSWER_WITH_TOOLS_TARGET_S:.0f} s)",
    ]
    return "\n".join([*rows, "", *lines])


def write_results(outcomes: list[Outcome], settings: Settings, path: Path) -> None:
    """Every case's outcome and the summary as JSON (parents created), with the model it scored."""
    cases = [
        {
            "id": o.case.id,
            "lang": o.case.lang,
            "category": o.case.category,
            "expected": o.case.tool,
            "chosen": o.chosen,
            "args": o.tools[0]["args"] if o.tools else None,
            "tool_ok": None if o.case.refuse else o.tool_ok,
            "args_ok": o.args_ok,
            "refused": o.refused if o.case.refuse else None,
            "answer_language": o.language,
            "language_ok": o.language_ok,
            "first_token_s": o.first_token_s,
            "total_s": o.total_s,
            "error": o.error,
            "model_failure": o.model_failure,
            "answer": o.answer[:500],
        }
        for o in outcomes
    ]
    llm = settings.llm
    document = {
        "model": llm.model,
        "provider": llm.provider,
        "base_url": llm.base_url,
        "tool_mode": llm.tool_mode,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": summary(outcomes),
        "cases": cases,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
