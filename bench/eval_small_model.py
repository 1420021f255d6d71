"""`copilot eval-model` on a real small model: SmolLM2-135M on llama-cpp-python's server (CPU).

Usage: .venv/bin/python -m bench.eval_small_model [--out var/eval/smollm2-135m.json] [--only signal ...]
Starts the server (bench/llama_server.py: the model's own ChatML template, so the copilot's JSON tool mode)
and a private embedded Redis Stack, then runs the real command, `copilot eval-model`, with the `openai`
provider pointed at the server, exactly as a user would against any OpenAI-compatible server:

  LLM__PROVIDER=openai LLM__BASE_URL=http://127.0.0.1:PORT/v1 LLM__MODEL=SmolLM2-135M-Instruct.Q4_1 \
  LLM__TOOL_MODE=json INFERENCE__MAX_TOKENS=N LLM__REQUEST_TIMEOUT=600 copilot eval-model --out FILE

A 135M model is not a trading model: the figures prove the harness end to end on a real model (its real,
messy output), not the model. The same command scores llama3.1 on a trader's GPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import SHARED_DATA
from bench.llama_server import MODEL_NAME, llama_server
from server.in_thread import free_port
from tools.redis_embedded import EmbeddedRedis

# The categories `make bench` runs, 22 of the 44 cases (all 44 take ~2× as long on 2 CPU cores): signals,
# trade proposals, trades to refuse and plain questions, in both languages. `--only` with no category: all.
BENCH_CATEGORIES = ("signal", "trade", "refuse", "chat")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="var/eval/smollm2-135m.json")
    parser.add_argument("--only", nargs="*", default=list(BENCH_CATEGORIES), help="categories (none: all 44)")
    parser.add_argument("--max-tokens", type=int, default=96, help="answer bound per model request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(port=free_port(), data_dir=Path(tmp) / "redis")
        redis.start()
        try:
            with llama_server(Path(tmp) / "llama_server.log") as server:
                env = {
                    **os.environ,
                    "REDIS_URL": redis.url,
                    "DATA_DIR": str(Path(tmp) / "data"),
                    "FALLBACK_DATA_DIR": str(SHARED_DATA),
                    "LLM__PROVIDER": "openai",
                    "LLM__BASE_URL": server.url,
                    "LLM__MODEL": MODEL_NAME,
                    "LLM__TOOL_MODE": "json",
                    "INFERENCE__MAX_TOKENS": str(args.max_tokens),
                    # The first case evaluates the whole ~2,700-token prompt cold: minutes on busy cores.
                    "LLM__REQUEST_TIMEOUT": "600",
                }
                command = [sys.executable, "-m", "server.cli", "eval-model", "--out", args.out]
                if args.only:
                    command += ["--only", *args.only]
                code = subprocess.call(command, env=env)
        finally:
            redis.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
