"""The model bench's reading of what happened: the engine's log lines per request, and which messages of a
request were new (bench/bench_model.py runs on the real server in `make bench`; these need no server)."""

from __future__ import annotations

from bench.bench_model import new_messages
from bench.llama_server import EngineLine, engine_lines
from bench.model_proxy import Exchange

LOG = """INFO:     127.0.0.1:1 - "POST /v1/chat/completions HTTP/1.1" 200 OK
llama_perf_context_print: prompt eval time =     597.07 ms /   202 tokens (    2.96 ms per token)
llama_perf_context_print:        eval time =     292.00 ms /    15 runs   (   19.47 ms per token)
Llama.generate: 194 prefix-match hit, remaining 8 prompt tokens to eval
llama_perf_context_print: prompt eval time =      38.61 ms /     8 tokens (    4.83 ms per token)
llama_perf_context_print:        eval time =     297.19 ms /    15 runs   (   19.81 ms per token)
"""


def test_each_request_is_read_from_the_engine_log() -> None:
    first, second = engine_lines(LOG)
    assert first == EngineLine(reused=0, evaluated=202, eval_ms=597.07)  # no prefix line: nothing reused
    assert second == EngineLine(reused=194, evaluated=8, eval_ms=38.61) and second.prompt == 202
    assert engine_lines(LOG.split("Llama.generate")[0]) == [first]  # a request still running: not counted


def _exchange(*messages: tuple[str, str], reply: str = "") -> Exchange:
    return Exchange({"messages": [{"role": r, "content": c} for r, c in messages]}, 0.0, reply=reply)


def test_new_messages_are_those_neither_sent_before_nor_the_reply() -> None:
    system, question = ("system", "S"), ("user", "hola")
    before = _exchange(system, question, reply="¿Qué tal?")
    appended = _exchange(system, question, ("assistant", "¿Qué tal?"), question)
    fresh, where = new_messages(appended, before)
    assert fresh == [{"role": "user", "content": "hola"}] and where == "end"  # a repeated question is new
    reworded = _exchange(system, ("user", "hola (otra vez)"), ("assistant", "¿Qué tal?"))
    fresh, where = new_messages(reworded, before)
    assert fresh == [{"role": "user", "content": "hola (otra vez)"}] and where == "1:user"
    assert new_messages(before, None) == (before.body["messages"], "first")
