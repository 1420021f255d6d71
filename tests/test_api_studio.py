"""langgraph.json names an importable factory that builds the copilot graph (for `langgraph dev`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.support import ROOT


async def test_langgraph_json_factory_builds_the_copilot_graph(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str, shared_data: Path, tmp_path: Path
) -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    path, _, name = config["graphs"]["copilot"].partition(":")
    module = importlib.import_module(path.removeprefix("./").removesuffix(".py").replace("/", "."))
    # The factory reads settings like the CLI does: from the environment.
    for key, value in {
        "REDIS_URL": redis_url,
        "REDIS__PREFIX": key_prefix,
        "DATA_DIR": str(tmp_path),
        "FALLBACK_DATA_DIR": str(shared_data),
        "LOGGING__FILE": "",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(module, "_services", None)
    graph = await getattr(module, name)({})
    nodes = set(graph.get_graph().nodes)
    assert {"load_context", "reason", "tools", "risk_gate", "human_approval", "execute"} <= nodes
    assert graph.checkpointer is None  # langgraph dev supplies its own
    # Studio trades on its own paper account: everything under its own key prefix.
    assert module._services.settings.redis.prefix == f"{key_prefix}{module.STUDIO_PREFIX}"
    await module._services.aclose()
    await module._services.redis.aclose()
