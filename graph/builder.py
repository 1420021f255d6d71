"""build_graph: the copilot's flow in one block (START → load_context → reason → tools / gate → approval)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from langchain_core.language_models import BaseChatModel
from langgraph.graph import START, StateGraph

from config import Settings
from graph.audit import AuditTrail
from graph.deps import Deps, wall_clock
from graph.nodes.ask_again import make_ask_again
from graph.nodes.execute import make_execute
from graph.nodes.human_approval import make_human_approval
from graph.nodes.load_context import make_load_context
from graph.nodes.reason import make_reason
from graph.nodes.risk_gate import make_risk_gate
from graph.nodes.tools import make_tools_node
from graph.routing import (
    after_approval,
    after_ask_again,
    after_execute,
    after_gate,
    after_reason,
    after_tools,
)
from graph.state import State
from tools.context import Context
from tools.services import Services


def build_graph(
    services: Services,
    settings: Settings,
    chat_model: BaseChatModel,
    now: Callable[[], datetime] = wall_clock,
) -> StateGraph[State, Context]:
    """The uncompiled graph: the server compiles it with the Redis saver, tests with whatever they need."""
    deps = Deps(services, settings, chat_model, AuditTrail(services.redis, settings.redis.prefix), now)
    graph = StateGraph(State, context_schema=Context)
    nodes = {
        "load_context": make_load_context(deps),
        "reason": make_reason(deps),
        "tools": make_tools_node(deps),
        "risk_gate": make_risk_gate(deps),
        "human_approval": make_human_approval(deps),
        "execute": make_execute(deps),
        "ask_again": make_ask_again(deps),
    }
    for name, node in nodes.items():
        graph.add_node(name, node)
    graph.add_edge(START, "load_context")
    graph.add_edge("load_context", "reason")
    graph.add_conditional_edges("reason", after_reason)
    graph.add_conditional_edges("tools", after_tools)
    graph.add_conditional_edges("risk_gate", after_gate)
    graph.add_conditional_edges("human_approval", after_approval)
    graph.add_conditional_edges("execute", after_execute)
    graph.add_conditional_edges("ask_again", after_ask_again)
    return graph
