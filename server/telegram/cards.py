"""The proposal card (what the trader approves, with Approve / Reject / Edit buttons), its outcome, notices.

Every dynamic value goes through `escape`: a symbol, a price, the gate's reasons, an alert's text.
`callback_data` is `<action letter>:<proposal id>` (34 bytes for the 32-hex ids; Telegram allows 64).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from graph.approval import Proposal, risk_limit_text
from graph.schemas import ChatResult
from server.telegram.format import escape

ACTIONS: dict[str, Literal["approve", "reject", "edit"]] = {"a": "approve", "r": "reject", "e": "edit"}
MAX_CALLBACK_BYTES = 64
SHORT = 8


def callback_data(action: str, proposal_id: str) -> str:
    data = f"{action}:{proposal_id}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback_data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def parse_callback(data: str | None) -> tuple[Literal["approve", "reject", "edit"], str] | None:
    """(decision, proposal id) of a button's data, None when it is not one of ours."""
    match = re.fullmatch(r"([are]):([0-9A-Za-z_-]{1,60})", data or "")
    return (ACTIONS[match.group(1)], match.group(2)) if match else None


def keyboard(proposal_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("✅ Approve", callback_data=callback_data("a", proposal_id)),
                InlineKeyboardButton("❌ Reject", callback_data=callback_data("r", proposal_id)),
                InlineKeyboardButton("✏️ Edit", callback_data=callback_data("e", proposal_id)),
            ]
        ]
    )


def _num(value: Any) -> str:
    return "—" if value is None else escape(value)


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def proposal_card(p: Proposal) -> str:
    """The card: what would be sent, what it risks, why the gate let it through, until when."""
    what = {"open": "OPEN", "close": f"CLOSE #{p.get('ticket')}", "modify": f"MODIFY #{p.get('ticket')}"}
    kind = what.get(p["kind"], p["kind"].upper())
    lines = [
        f"<b>Approval needed</b> · {escape(kind)} <b>{escape(p['side'])} {_num(p['size_lots'])} lots "
        f"{escape(p['symbol'])}</b>",
        f"Entry {_num(p['entry_price'])}",
        f"SL {_num(p['stop_loss'])} ({_num(p['stop_pips'])} pips) · "
        f"TP {_num(p['take_profit'])} ({_num(p['take_profit_pips'])} pips)",
        f"At risk <b>${_num(p['risk_usd'])}</b> ({_num(p['risk_pct'])} % of equity) · "
        f"reward ${_num(p['reward_usd'])} · R:R {_num(p['risk_reward'])}",
    ]
    limit = risk_limit_text(p)  # "your risk 0.5 %, cap 1 %" (the trader's preference)
    if limit is not None:
        lines.append(escape(limit))
    if p.get("notice"):
        lines.append(f"<i>{escape(p['notice'])}</i>")
    reasons = p["verdict"]["reasons"]
    if reasons:
        lines.append("Risk gate:")
        lines += [f"• {escape(reason)}" for reason in reasons]
    lines.append(
        f"Expires {escape(_when(p['expires_at']))} · id <code>{escape(p['proposal_id'][:SHORT])}</code>"
    )
    return "\n".join(lines)


def outcome_line(result: ChatResult) -> str:
    """How a decision ended, in one line (the card shows it in place of its buttons): the first line that is
    not a note in parentheses (a replayed answer starts with "(Already decided: …)")."""
    lines = [line.strip() for line in (result.response or "").splitlines() if line.strip()]
    text = next((line for line in lines if not line.startswith("(")), lines[0] if lines else "done")
    return escape(text[:300])


def decided_card(p: Proposal | None, card_html: str, outcome: str, by: str) -> str:
    """The card as it stays in the chat once decided: its terms, then the outcome (already escaped)."""
    return f"{card_html}\n\n<b>{outcome}</b>\n<i>{escape(by)}</i>"


def fill_notice(data: dict[str, Any]) -> str:
    kind = str(data.get("kind", "fill"))
    title = {"open": "Filled", "sl": "Stop loss hit", "tp": "Take profit hit", "manual": "Closed"}.get(
        kind, "Fill"
    )
    line = (
        f"🔔 <b>{escape(title)}</b>: #{escape(data.get('ticket', '?'))} {escape(data.get('side', ''))} "
        f"{escape(data.get('lots', ''))} lots {escape(data.get('symbol', ''))} "
        f"at {escape(data.get('price', ''))}"
    )
    if data.get("pnl_usd") is not None:
        line += f" · P&amp;L ${escape(data['pnl_usd'])}"
    return line


def alert_notice(data: dict[str, Any]) -> str:
    line = (
        f"🔔 <b>Alert</b>: {escape(data.get('symbol', ''))} {escape(data.get('condition', ''))} "
        f"{escape(data.get('price', ''))}"
    )
    if data.get("triggered_price") is not None:
        line += f" (at {escape(data['triggered_price'])})"
    if data.get("message"):
        line += f"\n{escape(data['message'])}"
    return line


def expiry_notice(p: Proposal, seconds_left: int) -> str:
    return (
        f"⏳ Proposal <code>{escape(p['proposal_id'][:SHORT])}</code> ({escape(p['side'])} "
        f"{escape(p['size_lots'])} {escape(p['symbol'])}) expires in {max(seconds_left, 0)} s"
    )
