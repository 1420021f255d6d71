"""A real copilot server process with a fault point, for tests that kill it (kill -9) at the worst moment.

The product has no fault hooks; this launcher wraps two of its functions, then serves the app as
`copilot serve` does. At the chosen point the run touches FAULT_MARKER and sleeps FAULT_PAUSE seconds: long
when the test kills the process there, short when the test drops the client's connection instead.

FAULT_POINT=before_send    the approval is checkpointed; execute has not called the broker yet
FAULT_POINT=after_send     the broker placed the order; execute's checkpoint is not written yet
FAULT_POINT=after_execute  execute's checkpoint (the order's outcome) is written; `reason` has not run
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import uvicorn

import graph.builder as builder
import graph.nodes.execute as execute
from config import load_settings

POINT = os.environ.get("FAULT_POINT", "")
PAUSE = float(os.environ.get("FAULT_PAUSE", "0"))
MARKER = Path(os.environ.get("FAULT_MARKER", "fault.marker"))


async def reached(point: str) -> None:
    if point == POINT:
        await asyncio.to_thread(MARKER.write_text, point)
        await asyncio.sleep(PAUSE)


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
        return await node(state, runtime)

    return reason


execute.send = send
builder.make_reason = make_reason  # type: ignore[assignment]


def main() -> None:
    from server.app import create_app

    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["FAULT_PORT"]), log_level="warning")


if __name__ == "__main__":
    main()
