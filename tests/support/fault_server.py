"""A real copilot server process with a fault point, for tests that kill it (kill -9) at the worst moment.

The product has no fault hooks; this launcher wraps two of its functions, then serves the app as
`copilot serve` does. At the chosen point the run touches FAULT_MARKER and sleeps FAULT_PAUSE seconds: long
when the test kills the process there, short when the test drops the client's connection instead.

FAULT_POINT=before_send    the approval is checkpointed; execute has not called the broker yet
FAULT_POINT=after_send     the broker placed the order; execute's checkpoint is not written yet
FAULT_POINT=after_execute  execute's checkpoint (the order's outcome) is written; `reason` has not run
Checkpoint boundaries (the checkpointer's own calls, so no timing is involved):
FAULT_POINT=decision_writes  the approval step's writes are saved, the checkpoint after that step is not
FAULT_POINT=execute_writes   execute's writes (the order's outcome) are saved, the next checkpoint is not
A chat turn:
FAULT_POINT=chat_reason      a chat turn (checkpointed only at its end) is in `reason`: nothing is saved yet
FAULT_POINT=chat_after_tool  a chat turn's tools have run (an alert is set), `reason` has not answered: the
                             turn is not checkpointed yet

FAULT_POINTS (JSON {user id: point}) gives each user's runs their own point, so one server (and one kill)
serves many trials; every run that reaches its point appends its thread id to FAULT_MARKER.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import uvicorn
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.redis.aio import AsyncRedisSaver

import graph.builder as builder
import graph.nodes.execute as execute
from config import load_settings
from graph.deps import run_thread_id

POINT = os.environ.get("FAULT_POINT", "")
POINTS: dict[str, str] = json.loads(os.environ.get("FAULT_POINTS") or "{}")
PAUSE = float(os.environ.get("FAULT_PAUSE", "0"))
MARKER = Path(os.environ.get("FAULT_MARKER", "fault.marker"))


def _mark(thread: str) -> None:
    with MARKER.open("a") as out:
        out.write(thread + "\n")


async def reached(point: str, thread: str = "") -> None:
    thread = thread or run_thread_id()
    if point == POINTS.get(thread.split(":")[0], POINT):
        await asyncio.to_thread(_mark, thread)
        await asyncio.sleep(PAUSE)


real_put = AsyncRedisSaver.aput


async def aput(self: Any, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
    """Pause before the checkpoint that follows the approval step or execute: the step's writes are saved
    (put_writes), the checkpoint after them is not (a sync-durability run waits for this put)."""
    thread = str(config["configurable"]["thread_id"])
    values = checkpoint.get("channel_values") or {}
    if "decision" in new_versions and (values.get("decision") or {}).get("decision") == "approve":
        await reached("decision_writes", thread)
    if "outcome" in new_versions and (values.get("outcome") or {}).get("status") == "executed":
        await reached("execute_writes", thread)
    return await real_put(self, config, checkpoint, metadata, new_versions)


real_send = execute.send


async def send(*args: Any) -> Any:
    await reached("before_send")
    result = await real_send(*args)
    await reached("after_send")
    return result


real_make_reason = builder.make_reason


def make_reason(deps: Any) -> Any:
    node = real_make_reason(deps)

    async def reason(state: Any, runtime: Any) -> Any:
        if (state.get("outcome") or {}).get("status") == "executed":
            await reached("after_execute")
        messages = state.get("messages") or []
        if messages and isinstance(messages[-1], HumanMessage) and state.get("decision") is None:
            await reached("chat_reason")
        if messages and isinstance(messages[-1], ToolMessage) and state.get("decision") is None:
            await reached("chat_after_tool")
        return await node(state, runtime)

    return reason


execute.send = send
builder.make_reason = make_reason  # type: ignore[assignment]
AsyncRedisSaver.aput = aput  # type: ignore[method-assign]


def main() -> None:
    from server.app import create_app

    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["FAULT_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
