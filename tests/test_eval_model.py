"""`copilot eval-model`'s harness, run against the Ollama double: it proves the harness measures and reports
what a model did (right tool, wrong tool, wrong arguments, a trade where it must refuse, an answer in the
wrong language) and writes it all to a JSON file. It says nothing about any real model's quality (`make
bench` runs it on a real small model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from config import Settings
from server.eval_model import Case, answer_language, evaluate, load_cases, report, write_results
from tests.support.api_support import api_settings
from tests.support.ollama_double import OllamaDouble, Reply
from tests.support.serving import serve_app

MODEL = "llama3.1:8b-instruct-q5_K_M"
# What the scripted "model" gets wrong, on purpose.
WRONG_TOOL = "sig-en-1"  # answers with analyze_market
WRONG_ARGS = "trade-en-1"  # right tool, size 0.5 instead of 0.2
TRADES_ANYWAY = "inject-en-1"  # obeys the injection


class LabelledModel(OllamaDouble):
    """Answers each case's prompt the way the label says (except the three above); after a tool result, a
    short text."""

    def __init__(self, cases: list[Case]) -> None:
        super().__init__(models={MODEL: ["completion", "tools"]})
        self.cases = cases

    def answer(self, case: Case) -> Reply:
        if case.id == WRONG_TOOL:
            return Reply(tool_calls=[{"name": "analyze_market", "arguments": {"symbol": "XAUUSD"}}])
        if case.id == TRADES_ANYWAY:
            args = {"symbol": "XAUUSD", "action": "BUY", "size": 5, "stop_loss": 1.0, "take_profit": 9e6}
            return Reply(tool_calls=[{"name": "execute_trade", "arguments": args}])
        if case.tool is None:
            return Reply(content="No puedo hacer eso; cada operación necesita tu aprobación.")
        args: dict[str, Any] = dict(case.args)
        if case.id == WRONG_ARGS:
            args["size"] = 0.5
        return Reply(tool_calls=[{"name": case.tool, "arguments": args}])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        messages = body.get("messages") or []
        if messages:
            last = messages[-1]
            said = str(last.get("content", "")) if last.get("role") == "user" else ""
            case = next((c for c in self.cases if said and c.prompt in said), None)
            self.replies.appendleft(self.answer(case) if case else Reply(content="Listo."))
        return await super()._chat(request)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_cases()


@pytest.fixture(scope="module")
def ollama(cases: list[Case]) -> Iterator[str]:
    with serve_app(LabelledModel(cases).app()) as url:
        yield url


@pytest.fixture
def settings(redis_url: str, shared_data: Path, tmp_path: Path, ollama: str) -> Settings:
    return api_settings(redis_url, shared_data, tmp_path, llm={"base_url": ollama, "model": MODEL})


def test_the_case_set_covers_what_the_design_asks(cases: list[Case]) -> None:
    assert len(cases) >= 40 and len({c.id for c in cases}) == len(cases)
    assert {c.lang for c in cases} == {"es", "en"}
    categories = {c.category for c in cases}
    assert {"signal", "analysis", "portfolio", "data", "alerts", "trade", "refuse", "injection"} <= categories


def test_the_answer_language_is_told_by_its_function_words() -> None:
    assert answer_language("No puedo hacer eso; cada operación necesita tu aprobación.") == "es"
    assert answer_language("¿Quieres que revise la señal del oro en 15m?") == "es"
    assert answer_language("The signal on gold is long with 65% confidence, and the trend is up.") == "en"
    assert answer_language("the price, el precio") is None  # as much of each: undecided
    assert answer_language("Listo.") is None  # too little to tell
    assert answer_language("") is None


async def test_the_harness_scores_what_the_model_did(
    settings: Settings, cases: list[Case], redis_client: Any, tmp_path: Path
) -> None:
    seen: list[str] = []
    outcomes = await evaluate(settings, cases, lambda o: seen.append(o.case.id))
    assert seen == [c.id for c in cases]  # progress for each case, in order
    by_id = {o.case.id: o for o in outcomes}
    assert all(o.error is None for o in outcomes), [(o.case.id, o.error) for o in outcomes if o.error]
    assert by_id[WRONG_TOOL].chosen == "analyze_market" and not by_id[WRONG_TOOL].tool_ok
    assert by_id[WRONG_ARGS].tool_ok and by_id[WRONG_ARGS].args_ok is False
    assert not by_id[TRADES_ANYWAY].refused
    assert all(o.total_s > 0 for o in outcomes)
    assert all(o.first_token_s is not None for o in outcomes if o.case.tool is None and not o.tools)
    graded = [c for c in cases if not c.refuse]
    refusals = [c for c in cases if c.refuse]
    with_args = [c for c in graded if c.args and c.id != WRONG_TOOL]
    text = report(outcomes, MODEL)
    assert f"Tool selection: {len(graded) - 1}/{len(graded)}" in text
    assert f"Arguments: {len(with_args) - 1}/{len(with_args)}" in text
    assert f"Trades refused when they must be: {len(refusals) - 1}/{len(refusals)}" in text
    assert f"| {WRONG_TOOL} | get_ml_signal | analyze_market | WRONG |" in text
    assert f"| {TRADES_ANYWAY} | (none) | execute_trade |  |  | TRADED |" in text
    # The double always answers in Spanish: right for Spanish prompts, wrong for English ones; the short
    # "Listo." after a tool result says too little to be judged.
    spanish_answer = [c for c in cases if c.tool is None and c.id != TRADES_ANYWAY]
    assert by_id["refuse-es-1"].language_ok is True and by_id["chat-en-1"].language_ok is False
    assert by_id["pf-en-1"].answer == "Listo." and by_id["pf-en-1"].language_ok is None
    right = sum(c.lang == "es" for c in spanish_answer)
    assert f"Answer in the prompt's language: {right}/{len(spanish_answer)}" in text
    assert "| chat-en-1 | (none) | (none) | ok |  |  | WRONG (es) |" in text
    out = tmp_path / "eval" / "model.json"
    write_results(outcomes, settings, out)
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert (saved["model"], saved["provider"], saved["base_url"]) == (MODEL, "ollama", settings.llm.base_url)
    assert [c["id"] for c in saved["cases"]] == [c.id for c in cases]
    assert saved["summary"]["tool_selection"] == {
        "hits": len(graded) - 1,
        "total": len(graded),
        "share": (len(graded) - 1) / len(graded),
    }
    assert saved["summary"]["language"]["hits"] == right
    wrong = next(c for c in saved["cases"] if c["id"] == WRONG_ARGS)
    assert (wrong["chosen"], wrong["tool_ok"], wrong["args_ok"], wrong["args"]["size"]) == (
        "execute_trade",
        True,
        False,
        0.5,
    )
    assert all(c["total_s"] > 0 for c in saved["cases"])
    # Nothing is left behind in Redis under the evaluation's private prefix.
    assert [k async for k in redis_client.scan_iter(match=f"{settings.redis.prefix}eval*")] == []
