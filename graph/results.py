"""Turn graph snapshots into the facade's answers: ChatResult, SessionState, CheckpointInfo."""

from __future__ import annotations

from typing import Any, get_args

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Interrupt, StateSnapshot

from graph.answers import facts_of, headline
from graph.approval import OrderStatus, Outcome, Proposal, interrupt_proposal, risk_limit_text
from graph.messages import text
from graph.schemas import ChatMessage, ChatResult, CheckpointInfo, SessionState, ToolCallShown
from graph.state import State

# Outcomes of a send to the broker ("requote" and "refused" never reached it).
ORDER_STATUSES = get_args(OrderStatus)


def facts(fresh: list[AnyMessage]) -> list[str]:
    """What each deterministic trade result of this run (gate, approval, execute) must show of itself, read
    from the facts its message carries (graph.answers.headline): a block keeps its reasons too, so the
    trader reads why even when the model does not explain it (a real small model often does not)."""
    return [headline(said) for said in map(facts_of, fresh) if said]


def pending_proposal(snapshot: StateSnapshot) -> Proposal | None:
    """The proposal the thread is paused on, if any (a copy of the one its approval interrupt carries)."""
    for item in snapshot.interrupts:
        proposal = interrupt_proposal(item.value)
        if proposal is not None:
            return proposal.copy()
    return None


def interrupted(snapshot: StateSnapshot) -> bool:
    """The thread's last decision run stopped between steps (killed, cancelled, Redis lost): a decision is
    recorded, steps are left and it is not paused on the trader. Such a run is completed, never dropped.
    (A chat turn cut short leaves no checkpoint of its own; graph.recovery notes and re-runs it.)"""
    decided = (snapshot.values or {}).get("decision") is not None
    return decided and not snapshot.interrupts and (bool(snapshot.next) or step_done(snapshot))


def step_done(snapshot: StateSnapshot) -> bool:
    """The step's tasks all finished and their writes are saved, but the checkpoint after them is not (a
    crash between the two): LangGraph's live snapshot then shows no `next`, yet the run has steps left."""
    return bool(snapshot.tasks) and all(t.result is not None and not t.interrupts for t in snapshot.tasks)


def decided_result(snapshot: StateSnapshot, proposal_id: str) -> ChatResult | None:
    """How the thread's last decision ended when it was about `proposal_id` (or 8+ of its first characters;
    the run is complete, but its fate note may be missing if the process died right after it): the
    deterministic result lines and the order."""
    values = snapshot.values or {}
    decision, outcome = values.get("decision") or {}, values.get("outcome")
    decided = str(decision.get("proposal_id") or "")
    if not decided.startswith(proposal_id.lower()) or snapshot.next or snapshot.interrupts:
        return None  # ("" matches the last decision, as a typed /approve without an id means)
    proposal_id = decided
    lines = facts(list(values.get("messages", [])))
    mine = outcome if outcome and outcome.get("proposal_id") == proposal_id else None
    return ChatResult(
        response=lines[-1]
        if lines
        else f"Proposal {proposal_id[:8]} was decided: {decision.get('decision')}.",
        order=mine if mine and mine["status"] in ORDER_STATUSES else None,
        pending_approval=pending_proposal(snapshot),
    )


def merge_results(first: ChatResult | None, then: ChatResult) -> ChatResult:
    """A recovered run's result followed by the new turn's (the order is the recovered one if any)."""
    if first is None:
        return then
    return then.model_copy(
        update={
            "response": f"{first.response}\n\n{then.response}",
            "tools_used": list(dict.fromkeys([*first.tools_used, *then.tools_used])),
            "order": then.order or first.order,
        }
    )


def proposal_text(p: Proposal) -> str:
    what = {
        "open": f"{p['side']} {p['size_lots']} lots {p['symbol']} at ~{p['entry_price']}",
        "close": f"CLOSE position #{p['ticket']} ({p['side']} {p['size_lots']} {p['symbol']})",
        "modify": f"MODIFY position #{p['ticket']} ({p['symbol']})",
    }[p["kind"]]
    lines = [
        f"Approval required / Aprobación requerida: {what}",
        f"SL {p['stop_loss']} ({p['stop_pips']} pips)  TP {p['take_profit']} "
        f"({p['take_profit_pips']} pips)  R:R {p['risk_reward']}",
        f"Risk {p['risk_usd']} USD ({p['risk_pct']}% of equity), reward {p['reward_usd']} USD",
        f"Expires {p['expires_at']}. Proposal {p['proposal_id']}. Reply /approve or /reject <reason>.",
    ]
    limit = risk_limit_text(p)
    if limit is not None:
        lines[2] += f" ({limit})"
    if p["requote_of"]:
        lines.insert(1, "Re-quoted: the price or your account changed since the previous approval.")
    if p["notice"]:
        lines.insert(1, p["notice"])
    return "\n".join(lines)


def new_messages(before: set[str], messages: list[AnyMessage]) -> list[AnyMessage]:
    return [m for m in messages if m.id not in before]


class RunEnd:
    """The thread as a run left it, from the run's own stream (`values` and `updates` modes): the last state
    and its interrupts, so the result needs no second read of the checkpoint."""

    def __init__(self, config: RunnableConfig) -> None:
        self.config = config
        self.values: State = {}
        self.interrupts: list[Interrupt] = []

    def see(self, mode: str, chunk: Any) -> None:
        if mode == "values" and isinstance(chunk, dict):
            self.values = State(**chunk)
        elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
            self.interrupts.extend(chunk["__interrupt__"])

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            values=self.values,
            next=(),
            config=self.config,
            metadata=None,
            created_at=None,
            parent_config=None,
            tasks=(),
            interrupts=tuple(self.interrupts),
        )


def chat_result(snapshot: StateSnapshot, before: set[str]) -> ChatResult:
    values = snapshot.values or {}
    messages: list[AnyMessage] = list(values.get("messages", []))
    fresh = new_messages(before, messages)
    replies = [text(m) for m in fresh if isinstance(m, AIMessage) and text(m).strip()]
    said = "\n".join(replies)
    missing = [line for line in facts(fresh) if line not in said]
    if missing:  # e.g. a model's "Ejecutado." after a blocked proposal never stands alone
        replies.insert(0, "\n".join(missing))
    pending = pending_proposal(snapshot)
    if pending is not None:
        replies.append(proposal_text(pending))
    used = list(dict.fromkeys(values.get("tools_used") or []))
    outcome: Outcome | None = values.get("outcome")
    return ChatResult(
        response="\n\n".join(replies) or "(no answer)",
        tools_used=used,
        signal=values.get("turn_signal"),
        pending_approval=pending,
        order=outcome if outcome and outcome["status"] in ORDER_STATUSES else None,
        verdict=values.get("verdict"),
    )


def message_dict(message: AnyMessage) -> ChatMessage | None:
    if isinstance(message, HumanMessage):
        return ChatMessage(role="user", content=text(message))
    if isinstance(message, ToolMessage):
        return ChatMessage(role="tool", content=text(message), name=message.name)
    if isinstance(message, AIMessage):
        out = ChatMessage(role="assistant", content=text(message))
        if message.tool_calls:
            out["tool_calls"] = [ToolCallShown(name=c["name"], args=c["args"]) for c in message.tool_calls]
        return out
    return None


def session_state(session_id: str, snapshot: StateSnapshot) -> SessionState:
    values = snapshot.values or {}
    rows = [message_dict(m) for m in values.get("messages", [])]
    return SessionState(
        session_id=session_id,
        messages=[r for r in rows if r is not None],
        pending_approval=pending_proposal(snapshot),
        interrupted_run=interrupted(snapshot),
        last_signal=values.get("last_signal"),
        checkpoint_id=snapshot.config.get("configurable", {}).get("checkpoint_id"),
    )


def checkpoint_info(snapshot: StateSnapshot) -> CheckpointInfo:
    metadata = snapshot.metadata or {}
    return CheckpointInfo(
        checkpoint_id=str(snapshot.config.get("configurable", {}).get("checkpoint_id")),
        created_at=snapshot.created_at,
        step=metadata.get("step"),
        next=list(snapshot.next),
        source=metadata.get("source"),
    )


def message_ids(snapshot: StateSnapshot) -> set[str]:
    return {str(m.id) for m in (snapshot.values or {}).get("messages", [])}
