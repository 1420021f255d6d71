"""What the ChatOllama tests share: the model names the Ollama double serves, and two stand-in tools."""

from __future__ import annotations

from langchain_core.tools import tool

NATIVE = "llama3.1:8b-instruct-q5_K_M"  # tools capability: native tool calling
PLAIN = "llama3:8b-instruct-q5_K_M"  # no tools capability: JSON mode


@tool
def get_ml_signal(symbol: str, timeframe: str = "5m") -> str:
    """Get the current trading signal."""
    return "{}"


@tool
def get_portfolio() -> str:
    """Get the account."""
    return "{}"


TOOLS = [get_ml_signal, get_portfolio]
MODELS = {NATIVE: ["completion", "tools"], PLAIN: ["completion"]}
