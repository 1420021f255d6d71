"""The trader's reply to an approval interrupt, read: the interrupt's value (LangGraph's human-in-the-loop
request plus the whole proposal), the two reply formats it is resumed with (a standard `HumanResponse`, or a
one-item list of them as Agent Inbox sends, and the project's own {"proposal_id", "decision", "edits",
"reason"}), their validation into a Decision and the edit applied to the proposal call. No graph node here:
graph.nodes.human_approval pauses and records; this module only reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict

from graph.answers import expired_reason
from graph.approval import MAX_LOTS, MAX_PRICE, Decision, PendingCall, Proposal
from graph.results import proposal_text
from tools.schemas import EDITABLE, JsonObject, TradeIdea
from tools.services import Services
from tools.trading_tools import BadArguments, proposal_args, trade_call_args

DECISIONS = ("approve", "edit", "reject")
# Trader-facing edit names -> the proposal tool's argument names.
EDIT_ARGS = EDITABLE  # by the proposal's (TradeIdea's) names
# The proposal fields shown as the action's arguments (scalars only, so a generic UI can edit them).
ACTION_ARGS = (
    "proposal_id",
    "kind",
    "symbol",
    "side",
    "size_lots",
    "entry_price",
    "stop_loss",
    "take_profit",
    "risk_usd",
    "risk_pct",
    "risk_reward",
    "ticket",
    "expires_at",
)
RESPONSE_TYPES = ("accept", "edit", "response", "ignore")
HOW_TO_ANSWER = (
    "Accept approves this exact proposal; Edit changes size_lots, stop_loss or take_profit (checked by the "
    "risk gate again); Respond rejects it with your text as the reason; Ignore rejects it."
)


# LangGraph's human-in-the-loop request and reply (langgraph.prebuilt.interrupt, since moved to
# langchain.agents.interrupt, which this project does not install): the shapes Studio and the inboxes read.
class ActionRequest(TypedDict):
    action: str
    args: JsonObject


class HumanInterruptConfig(TypedDict):
    allow_ignore: bool
    allow_respond: bool
    allow_edit: bool
    allow_accept: bool


class HumanInterrupt(TypedDict):
    action_request: ActionRequest
    config: HumanInterruptConfig
    description: str | None


class HumanResponse(TypedDict):
    type: Literal["accept", "ignore", "response", "edit"]
    args: str | ActionRequest | None


class ApprovalRequest(HumanInterrupt):
    """The interrupt's value: a HumanInterrupt, plus the full proposal for the copilot's own clients."""

    type: Literal["approval_required"]
    proposal: Proposal


class ApprovalEdits(BaseModel):
    """What an "edit" decision may change; every field is optional, at least one must be set."""

    # strict: numbers only (no "1.5" strings, no booleans); ints are accepted and become floats.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True)

    size_lots: float | None = Field(None, gt=0, le=MAX_LOTS, description=f"lots (0 < size ≤ {MAX_LOTS:g})")
    stop_loss: float | None = Field(None, gt=0, le=MAX_PRICE, description=f"price (0 < SL ≤ {MAX_PRICE:g})")
    take_profit: float | None = Field(None, gt=0, le=MAX_PRICE, description=f"price (0 < TP ≤ {MAX_PRICE:g})")

    def changes(self) -> dict[str, float]:
        """The fields set, as check_decision returns them ({} when nothing changes)."""
        return self.model_dump(exclude_none=True)


class BadDecision(Exception):
    """A resume value that cannot be applied as it is: the trader is asked again."""


class ProposalExpired(BadDecision):
    """A decision after the proposal's expiry: nothing can approve it any more, so it is cancelled."""


def _edit_problem(error: ValidationError) -> str:
    """The first problem of an edits payload, in the trader's words."""
    err = error.errors()[0]
    key = ".".join(str(p) for p in err.get("loc", ())) or "edits"
    got = err.get("input")
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown edit {key!r} (expected some of {', '.join(EDIT_ARGS)})"
    if kind == "finite_number":
        return f"edit {key} must be a finite number (got {got!r})"
    bound = MAX_LOTS if key == "size_lots" else MAX_PRICE
    # A whole number too big for a float (10**400) is refused as not a number: say what is wrong with it.
    too_big = kind == "float_type" and isinstance(got, int) and not isinstance(got, bool)
    if kind == "less_than_equal" or too_big:
        return f"edit {key} must be at most {bound:,.10g} (got {_short(got)})"
    if kind in ("greater_than", "float_type", "float_parsing"):
        return f"edit {key} must be a positive number (got {_short(got)})"
    return f"edits are not valid: {key}: {err.get('msg', 'invalid')}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_edits(edits: Any) -> dict[str, float]:
    """The edits as {field: float} ({} for none); raises BadDecision for anything ApprovalEdits refuses."""
    if edits is None or edits == {}:
        return {}
    if not isinstance(edits, dict):
        raise BadDecision(
            f"edits must be an object with some of {', '.join(EDIT_ARGS)} (got {_short(edits)})"
        )
    try:
        return ApprovalEdits.model_validate(edits).changes()
    except ValidationError as exc:
        raise BadDecision(_edit_problem(exc)) from None


def check_decision(value: object, proposal: Proposal, now: datetime) -> Decision:
    """The decision with all its fields; raises BadDecision with a reason to show."""
    if not isinstance(value, dict):
        raise BadDecision("the decision was not understood")
    decision = value.get("decision")
    if decision not in DECISIONS:
        raise BadDecision(f"unknown decision {decision!r} (expected approve, edit or reject)")
    if value.get("proposal_id") != proposal["proposal_id"]:
        raise BadDecision(f"the decision names proposal {value.get('proposal_id')!r}, not the pending one")
    if now > datetime.fromisoformat(proposal["expires_at"]):
        raise ProposalExpired(expired_reason(proposal["expires_at"]))
    edits = check_edits(value.get("edits"))
    if decision == "edit" and not edits:
        raise BadDecision(f"an edit must change some of {', '.join(EDIT_ARGS)}")
    if decision != "edit" and edits:
        # Approving must approve exactly what the trader saw: edited levels go back through the gate first.
        raise BadDecision(f"edits come with decision 'edit', not {decision!r}")
    reason = str(value.get("reason") or "")
    return Decision(decision=decision, proposal_id=proposal["proposal_id"], edits=edits, reason=reason)


def check_resume(decision: object) -> None:
    """What the resume value must be before it reaches the checkpoint writer, whatever its shape (the
    project's decision or a human-in-the-loop answer): no integer beyond 64 bits anywhere (the writer raises
    on it), and the project's edits valid. Raises BadDecision; the proposal stays pending."""
    if isinstance(decision, dict):
        check_edits(decision.get("edits"))  # the precise words for the project's own edits
    pending = [decision]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise BadDecision(f"a number in the answer is out of range ({str(value)[:20]}…)")


def approval_request(proposal: Proposal, call: PendingCall | None, problem: str | None) -> ApprovalRequest:
    """The interrupt value for `proposal`; `problem` (the last answer not applied) heads the notice."""
    shown = proposal.copy()
    if problem:
        notice = f"Not applied: {problem}. The proposal still waits."
        shown["notice"] = "\n".join(n for n in (notice, proposal["notice"]) if n)
    kind = proposal["kind"]
    fields: JsonObject = dict(proposal)
    return ApprovalRequest(
        action_request=ActionRequest(
            action=call["name"] if call else "execute_trade",
            args={key: fields[key] for key in ACTION_ARGS if key in fields},
        ),
        # Closing a position has nothing to edit; the other kinds' levels (and an open's size) are editable.
        config=HumanInterruptConfig(
            allow_ignore=True, allow_respond=True, allow_edit=kind != "close", allow_accept=True
        ),
        description=f"{proposal_text(shown)}\n{HOW_TO_ANSWER}",
        type="approval_required",
        proposal=shown,
    )


def _number_or_text(value: Any) -> Any:
    """A form's "0.15" as 0.15 (generic UIs edit arguments as text); anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _edited_fields(payload: object, shown: JsonObject) -> JsonObject:
    """The editable fields an edit response changed, compared with the arguments it was shown."""
    args = payload.get("args") if isinstance(payload, dict) and "action" in payload else payload
    if not isinstance(args, dict):
        raise BadDecision(f"an edit response carries the action's arguments (got {_short(args)})")
    edits: JsonObject = {}
    for key, value in args.items():
        if key not in shown:
            raise BadDecision(f"unknown edit {key!r} (expected some of {', '.join(EDIT_ARGS)})")
        number = _number_or_text(value) if key in EDIT_ARGS else value
        if number == shown[key] or str(value) == str(shown[key]):
            continue
        if key not in EDIT_ARGS:
            raise BadDecision(f"{key} cannot be edited (only {', '.join(EDIT_ARGS)}); propose again instead")
        edits[key] = number
    return edits


def from_human_response(value: object, proposal: Proposal, shown: JsonObject) -> object:
    """A standard HumanResponse as the project's own decision; any other value is returned unchanged.

    accept -> approve; edit -> edit with the changed size_lots / stop_loss / take_profit; response -> reject
    with the trader's text as the reason (the model reads it and may propose again); ignore -> reject.
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict) or "decision" in value or "type" not in value:
        return value
    kind, payload, pid = value.get("type"), value.get("args"), proposal["proposal_id"]
    if kind == "accept":
        return {"proposal_id": pid, "decision": "approve"}
    if kind == "ignore":
        return {"proposal_id": pid, "decision": "reject", "reason": "ignored in the inbox"}
    if kind == "response":
        if not isinstance(payload, str) or not payload.strip():
            raise BadDecision("a response needs the trader's text in args")
        return {"proposal_id": pid, "decision": "reject", "reason": payload.strip()}
    if kind == "edit":
        return {"proposal_id": pid, "decision": "edit", "edits": _edited_fields(payload, shown)}
    raise BadDecision(f"unknown response type {_short(kind)} (expected {', '.join(RESPONSE_TYPES)})")


def read_decision(value: object, request: ApprovalRequest, now: datetime) -> Decision:
    """Any supported resume value as the project's Decision (see check_decision)."""
    proposal = request["proposal"]
    decision = from_human_response(value, proposal, request["action_request"]["args"])
    if not isinstance(decision, dict):
        raise BadDecision(
            f"the answer {_short(decision)} was not understood: resume with "
            '{"type": "accept"} (or edit / response / ignore), or {"proposal_id", "decision": '
            "approve | edit | reject}"
        )
    return check_decision(decision, proposal, now)


def call_trade(services: Services, call: PendingCall) -> TradeIdea | None:
    """The trade an `execute_trade` call stands for: its edited TradeIdea, else its arguments read with the
    schema the model was given (None: not a trade, or arguments the gate will refuse with its own words)."""
    if call["name"] != "execute_trade":
        return None
    if "trade" in call:
        return TradeIdea.model_validate(call["trade"])
    try:
        return proposal_args(services, call["name"], call["args"])  # type: ignore[return-value]
    except BadArguments:
        return None


def shown_args(call: PendingCall) -> JsonObject:
    """The call's arguments as the model and the stream show them: an edited trade's, by the tool's names."""
    if "trade" in call:
        return trade_call_args(TradeIdea.model_validate(call["trade"]))
    return call["args"]


def edited_call(services: Services, call: PendingCall, edits: dict[str, float]) -> PendingCall:
    """The proposal call with the trader's edits, gated again: a new trade's edits are applied to its
    TradeIdea (`trade`); a modify's new levels are its arguments (they have the edits' names)."""
    trade = call_trade(services, call)
    if trade is not None:
        edited = trade.edited(edits).model_dump()
        return PendingCall(id=call["id"], name=call["name"], args=call["args"], trade=edited)
    args = {**call["args"], **{k: float(v) for k, v in edits.items() if k != "size_lots"}}
    return PendingCall(id=call["id"], name=call["name"], args=args)
