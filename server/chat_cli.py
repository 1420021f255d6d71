"""`copilot chat`: a terminal chat against a running server, streaming answers and asking for approvals."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import httpx

from graph.approval import Decision, Proposal, risk_limit_text
from tools.schemas import JsonObject

Event = tuple[str, JsonObject]
QUIT = {"/quit", "/exit", "quit", "exit"}


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events frames (event + data lines, blank line ends a frame) as (name, data)."""
    name, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
    if data:
        yield name, json.loads(data)


def describe_proposal(p: Proposal) -> str:
    what = {"open": "OPEN", "close": f"CLOSE #{p['ticket']}", "modify": f"MODIFY #{p['ticket']}"}[p["kind"]]
    lines = [
        f"== approval needed: {what} {p['side']} {p['size_lots']} lots {p['symbol']} ==",
        f"   entry {p['entry_price']}  SL {p['stop_loss']} ({p['stop_pips']} pips)"
        f"  TP {p['take_profit']} ({p['take_profit_pips']} pips)",
        f"   at risk ${p['risk_usd']} ({p['risk_pct']}% of equity)  reward ${p['reward_usd']}"
        f"  R:R {p['risk_reward']}",
        f"   expires {p['expires_at']}",
    ]
    limit = risk_limit_text(p)  # "your risk 0.5 %, cap 1 %" (the trader's preference)
    if limit is not None:
        lines[2] += f"  ({limit})"
    lines += [f"   - {reason}" for reason in p["verdict"]["reasons"]]
    return "\n".join(lines)


@dataclass
class ChatClient:
    url: str
    session_id: str
    symbol: str | None = None
    api_key: str | None = None
    ask: Callable[[str], str] = input
    out: TextIO = field(default_factory=lambda: sys.stdout)
    timeout: float = 300.0

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def _say(self, text: str, end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def stream(self, path: str, body: JsonObject | Decision) -> Proposal | None:
        """Run one streamed request, render it, and return the pending proposal it ended with (if any)."""
        pending: Proposal | None = None
        printed_tokens = False
        with httpx.stream(
            "POST", self.url + path, json=body, headers=self._headers(), timeout=self.timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                detail = error_detail(response.json()) if response.content else response.reason_phrase
                self._say(f"[error {response.status_code}] {detail}")
                return None
            for name, data in parse_sse(response.iter_lines()):
                if name == "token":
                    printed_tokens = True
                    self._say(data.get("text", ""), end="")
                elif name == "tool":
                    self._say(f"\n[tool] {data.get('name')} {json.dumps(data.get('args', {}))}")
                elif name == "approval_required":
                    pending = data.get("proposal")
                elif name == "final":
                    if not printed_tokens and data.get("response"):
                        self._say(data["response"], end="")
                    self._say("")
                    pending = data.get("pending_approval") or pending
                elif name == "error":
                    self._say(f"\n[error] {data.get('message')}")
        return pending

    def decide(self, proposal: Proposal) -> Decision | None:
        """Ask approve / edit / reject / later; returns the decision body, or None to decide later."""
        self._say(describe_proposal(proposal))
        pid = proposal["proposal_id"]
        while True:
            choice = self.ask("[a]pprove, [e]dit, [r]eject or [l]ater? ").strip().lower()[:1]
            if choice == "a":
                return Decision(proposal_id=pid, decision="approve", edits={}, reason="")
            if choice == "r":
                reason = self.ask("reason (optional): ").strip()
                return Decision(proposal_id=pid, decision="reject", edits={}, reason=reason)
            if choice == "l":
                return None
            if choice == "e":
                edits = self._ask_edits(proposal)
                if edits:
                    return Decision(proposal_id=pid, decision="edit", edits=edits, reason="")

    def _ask_edits(self, proposal: Proposal) -> dict[str, float]:
        edits: dict[str, float] = {}
        for key, label in (
            ("size_lots", "size (lots)"),
            ("stop_loss", "stop loss"),
            ("take_profit", "take profit"),
        ):
            raw = self.ask(f"{label} [{proposal.get(key)}]: ").strip()
            if raw:
                try:
                    edits[key] = float(raw)
                except ValueError:
                    self._say(f"not a number: {raw!r}; {label} unchanged")
        return edits

    def turn(self, message: str) -> None:
        body: dict[str, str] = {"message": message, "session_id": self.session_id}
        if self.symbol:  # else the session keeps its own
            body["symbol"] = self.symbol
        pending = self.stream("/api/chat/stream", body)
        while pending is not None:
            decision = self.decide(pending)
            if decision is None:
                self._say("(the proposal stays pending; /approve or /reject later, or answer here next time)")
                return
            pending = self.stream(f"/api/sessions/{self.session_id}/approval/stream", decision)

    def loop(self) -> int:
        self._say(
            f"Trading Copilot at {self.url}, session {self.session_id}. /help for commands, /quit to leave."
        )
        while True:
            try:
                message = self.ask("you> ").strip()
            except EOFError:
                return 0
            if message in QUIT:
                return 0
            if message:
                try:
                    self.turn(message)
                except httpx.HTTPError as exc:
                    self._say(f"[cannot reach the server at {self.url}: {exc}]")


def new_session_id() -> str:
    return f"cli-{secrets.token_hex(4)}"


def error_detail(body: JsonObject) -> str:
    """The API's error in words: `detail` as is, or a 422's list of {loc, msg} as `where: message; ...`."""
    detail = body.get("detail", body)
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail)
    return str(detail)
