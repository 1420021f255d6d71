"""The stock LangGraph stack the copilot is compared with: a user's obvious first version.

A prebuilt ReAct agent (`create_react_agent` with ChatOllama and one portfolio tool) checkpointed by the
stock AsyncRedisSaver (default key prefixes, no TTL, default durability, the whole history kept and sent to
the model), one thread per session, behind one FastAPI route: POST /chat {message, session_id}.

Usage (bench_stack starts it): .venv/bin/python -m bench.baseline --port P --redis-url URL --ollama URL
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from pydantic import BaseModel

MODEL = "llama3.1:8b-instruct-q5_K_M"


@tool
def get_portfolio() -> dict[str, Any]:
    """The trader's account: balance, equity, margin, open positions and P&L."""
    return {
        "balance": 10_000.0,
        "equity": 10_000.0,
        "margin": 0.0,
        "free_margin": 10_000.0,
        "positions": [],
        "daily_pnl": 0.0,
        "weekly_pnl": 0.0,
        "currency": "USD",
    }


class ChatBody(BaseModel):
    message: str
    session_id: str


def baseline_app(redis_url: str, ollama_url: str) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with warnings.catch_warnings():  # moved to langchain.agents in LangGraph 1.0; still the stock one
            warnings.simplefilter("ignore")
            from langgraph.prebuilt import create_react_agent

        async with AsyncRedisSaver.from_conn_string(redis_url) as saver:
            model = ChatOllama(model=MODEL, base_url=ollama_url)
            state["agent"] = create_react_agent(model, [get_portfolio], checkpointer=saver)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/chat")
    async def chat(body: ChatBody) -> dict[str, Any]:
        config = {"configurable": {"thread_id": body.session_id}}
        result = await state["agent"].ainvoke({"messages": [("user", body.message)]}, config)
        return {"response": result["messages"][-1].content}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--ollama", required=True)
    args = parser.parse_args()
    app = baseline_app(args.redis_url, args.ollama)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
