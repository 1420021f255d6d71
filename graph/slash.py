"""Slash commands (/signal, /buy, /approve, …): the same tools and decisions with no model involved."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from config.values import TIMEFRAMES
from graph.approval import MAX_LOTS, MAX_PRICE, Decision, Proposal
from graph.schemas import ChatResult
from tools.schemas import JsonObject, Side, TradeIdea
from tools.trading_tools import MAX_BARS, trade_call_args

SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.]{2,11}$")
DIGITS_RE = re.compile(r"^[0-9]+$")  # ASCII only: "²".isdigit() is True but int("²") raises
MAX_TICKET = 2**53 - 1  # the largest integer a JSON client (the web page) reads exactly

HELP_TEXT = """Comandos / Commands:
/signal SYMBOL [TF]                  señal actual / current signal (TF: 1m 5m 15m 1h 4h 1d)
/analyze SYMBOL                      análisis de mercado / market analysis
/data SYMBOL [TF] [BARS]             velas recientes / recent bars
/portfolio                           balance, posiciones / balance, positions
/buy SYMBOL [LOTS] sl PRICE tp PRICE propone compra / propose a buy (sin LOTS: tamaño por riesgo %)
/sell SYMBOL [LOTS] sl PRICE tp PRICE propone venta / propose a sell
/close TICKET                        propone cerrar / propose closing a position
/modify TICKET [sl PRICE] [tp PRICE] propone nuevo SL/TP / propose new SL/TP
/alert SYMBOL above|below PRICE TEXT alerta de precio / price alert
/approve [ID]                        aprueba la propuesta pendiente / approve the pending proposal
                                     (ID: 8+ caracteres del id / 8+ characters of its id)
/reject [REASON]                     rechaza la propuesta pendiente / reject the pending proposal
/prefs [KEY VALUE]                   tus preferencias / your preferences: risk 0.5, language en|es|auto,
                                     symbol EURUSD, timeframe 1h, notify fills,closes,alerts,expiries|none
/help                                esta ayuda / this help"""


@dataclass(frozen=True)
class ToolCommand:
    tool: str
    args: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionCommand:
    decision: Literal["approve", "reject"]
    reason: str = ""  # /reject's words
    proposal_id: str = ""  # /approve's id, or the first characters of it ("": the pending proposal)


@dataclass(frozen=True)
class HelpCommand:
    text: str = HELP_TEXT


@dataclass(frozen=True)
class SlashError:
    message: str


@dataclass(frozen=True)
class PrefsCommand:
    """`/prefs` (show) or `/prefs KEY VALUE ...` (set): preference name -> value (None: back to the default),
    checked against the bounds by tools.preferences when applied (the copilot facade does, with no model)."""

    changes: dict[str, object] = field(default_factory=dict)


SlashCommand = ToolCommand | DecisionCommand | HelpCommand | SlashError | PrefsCommand

PREF_NAMES = {
    "risk": "risk_per_trade_pct",
    "risk_per_trade_pct": "risk_per_trade_pct",
    "language": "language",
    "lang": "language",
    "idioma": "language",
    "symbol": "symbol",
    "timeframe": "timeframe",
    "tf": "timeframe",
    "notify": "notify",
}
RESET_WORDS = ("default", "reset")
PREF_KEYS = "risk, language, symbol, timeframe, notify"


class _Usage(ValueError):
    pass


def _symbol(token: str) -> str:
    symbol = token.upper()
    if not SYMBOL_RE.match(symbol):
        raise _Usage(f"'{token}' is not a symbol (e.g. XAUUSD)")
    return symbol


def _number(token: str, what: str, maximum: float = MAX_PRICE) -> float:
    try:
        value = float(token.replace(",", "."))  # "4380,5" is how many Spanish-speaking traders type it
    except ValueError:
        raise _Usage(f"{what} must be a number, got '{_shown(token)}'") from None
    if not math.isfinite(value):  # float() accepts "nan" and "inf"; NaN would slip past every rule
        raise _Usage(f"{what} must be a finite number, got '{_shown(token)}'")
    if value <= 0:
        raise _Usage(f"{what} must be positive, got '{_shown(token)}'")
    if value > maximum:
        raise _Usage(f"{what} must be at most {maximum:,.10g}, got '{_shown(token)}'")
    return value


def _whole(token: str, what: str, maximum: int) -> int:
    """A whole number in 1..maximum (bounded before int(): no huge ints reach a tool or a checkpoint)."""
    if not DIGITS_RE.match(token) or not token.strip("0"):
        raise _Usage(f"{what} must be a positive whole number, got '{_shown(token)}'")
    # Compare the digits before int(): int() of a 5000-digit string raises (and any such number is too big).
    if len(token.lstrip("0")) > len(str(maximum)) or int(token) > maximum:
        raise _Usage(f"{what} must be at most {maximum}, got '{_shown(token)}'")
    return int(token)


def _ticket(token: str) -> int:
    return _whole(token, "ticket", MAX_TICKET)


def _shown(token: str) -> str:
    """A token quoted back to the trader, cut short when someone pastes a wall of digits."""
    return token if len(token) <= 30 else token[:27] + "..."


def _approve(raw_rest: str) -> DecisionCommand:
    """`/approve [ID]`; the copilot checks ID against the pending proposal (at least its short id)."""
    return DecisionCommand("approve", proposal_id=raw_rest.strip())


def _levels(tokens: list[str]) -> dict[str, float]:
    """Parse 'sl X tp Y' pairs in any order."""
    if len(tokens) % 2:
        raise _Usage("levels go in pairs: sl PRICE tp PRICE")
    levels: dict[str, float] = {}
    for key, value in zip(tokens[::2], tokens[1::2], strict=True):
        name = {"sl": "stop_loss", "tp": "take_profit"}.get(key.lower())
        if name is None:
            raise _Usage(f"unknown level '{key}' (use sl / tp)")
        levels[name] = _number(value, key.upper())
    return levels


def _trade(action: str, rest: list[str]) -> ToolCommand:
    if not rest:
        raise _Usage(f"/{action.lower()} SYMBOL [LOTS] sl PRICE tp PRICE")
    symbol, size_lots, tail = _symbol(rest[0]), None, rest[1:]
    if tail and tail[0].lower() not in ("sl", "tp"):
        size_lots = _number(tail[0], "LOTS", MAX_LOTS)
        tail = tail[1:]
    levels = _levels(tail)
    if "stop_loss" not in levels:
        raise _Usage("a stop loss is required: sl PRICE")
    if "take_profit" not in levels:
        raise _Usage("a take profit is required: tp PRICE")
    side: Side = "BUY" if action == "BUY" else "SELL"
    trade = TradeIdea(symbol=symbol, side=side, size_lots=size_lots, **levels)
    # The same call the model would make: the risk gate takes slash and model proposals alike.
    return ToolCommand("execute_trade", trade_call_args(trade))


def _timeframe(token: str) -> str:
    tf = token.lower()
    if tf not in TIMEFRAMES:
        raise _Usage(f"unknown timeframe '{token}' (use {' '.join(TIMEFRAMES)})")
    return tf


def _market(name: str, rest: list[str]) -> ToolCommand:
    if not rest:
        raise _Usage(f"/{name} SYMBOL")
    args: JsonObject = {"symbol": _symbol(rest[0])}
    if name == "analyze":
        return ToolCommand("analyze_market", args)
    if len(rest) > 1:
        args["timeframe"] = _timeframe(rest[1])
    if name == "data":
        if len(rest) > 2:
            args["bars"] = _whole(rest[2], "BARS", MAX_BARS)
        return ToolCommand("get_market_data", args)
    return ToolCommand("get_ml_signal", args)


def _alert(rest: list[str]) -> ToolCommand:
    if len(rest) < 3 or rest[1].lower() not in ("above", "below"):
        raise _Usage("/alert SYMBOL above|below PRICE TEXT")
    return ToolCommand(
        "set_alert",
        {
            "symbol": _symbol(rest[0]),
            "condition": rest[1].lower(),
            "price": _number(rest[2], "PRICE"),
            "message": " ".join(rest[3:]),
        },
    )


def _position(name: str, rest: list[str]) -> ToolCommand:
    if not rest:
        raise _Usage(f"/{name} TICKET")
    if name == "close":
        return ToolCommand("close_position", {"ticket": _ticket(rest[0])})
    levels = _levels(rest[1:])
    if not levels:
        raise _Usage("/modify TICKET [sl PRICE] [tp PRICE]")
    return ToolCommand("modify_position", {"ticket": _ticket(rest[0]), **levels})


def _pref_value(name: str, token: str) -> object:
    if token.lower() in RESET_WORDS:
        return None
    if name == "risk_per_trade_pct":
        try:  # bounds (finite, > 0, the cap) are checked with the preference's own rules
            return float(token.replace(",", ".").rstrip("%"))
        except ValueError:
            raise _Usage(f"risk must be a number (% of equity), got '{_shown(token)}'") from None
    if name == "notify":
        kinds = [k for k in re.split(r"[,\s]+", token.lower()) if k]
        if kinds == ["all"]:
            return ["fills", "closes", "alerts", "expiries"]
        return [] if kinds == ["none"] else kinds
    return token.upper() if name == "symbol" else token.lower()


def _prefs(rest: list[str]) -> PrefsCommand:
    """`/prefs`, `/prefs risk 0.5`, `/prefs language en symbol EURUSD`, `/prefs notify fills,closes`."""
    changes: dict[str, object] = {}
    i = 0
    while i < len(rest):
        name = PREF_NAMES.get(rest[i].lower())
        if name is None:
            raise _Usage(f"unknown preference '{_shown(rest[i])}' (use {PREF_KEYS})")
        if i + 1 >= len(rest):
            raise _Usage(f"{rest[i].lower()} needs a value, e.g. /prefs risk 0.5")
        value = rest[i + 1]
        if name == "notify":  # "fills, closes" may arrive as several tokens: up to the next name
            j = i + 2
            while j < len(rest) and rest[j].lower() not in PREF_NAMES:
                value += "," + rest[j]
                j += 1
            changes[name], i = _pref_value(name, value), j
            continue
        changes[name] = _pref_value(name, value)
        i += 2
    return PrefsCommand(changes)


def _dispatch(name: str, rest: list[str], raw_rest: str) -> SlashCommand:
    if name in ("signal", "analyze", "data"):
        return _market(name, rest)
    if name == "portfolio":
        return ToolCommand("get_portfolio", {})
    if name in ("buy", "sell"):
        return _trade(name.upper(), rest)
    if name in ("close", "modify"):
        return _position(name, rest)
    if name == "alert":
        return _alert(rest)
    if name == "approve":
        return _approve(raw_rest)
    if name == "reject":
        return DecisionCommand("reject", raw_rest)
    if name == "help":
        return HelpCommand()
    if name in ("prefs", "preferences"):
        return _prefs(rest)
    return SlashError(f"unknown command /{name}; /help lists the commands")


def parse_slash(text: str) -> SlashCommand | None:
    """A slash command, or None when `text` is ordinary chat for the model. Never raises."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2 or stripped[1] in "/ ":
        return None
    head, _, raw_rest = stripped[1:].partition(" ")
    name = head.lower()
    try:
        return _dispatch(name, raw_rest.split(), raw_rest.strip())
    except _Usage as exc:
        return SlashError(f"/{name}: {exc}")


SHORT_ID = 8  # the proposal id's first characters shown to the trader; `/approve ID` needs at least these


class DecisionRefused(Exception):
    """A typed decision that is not applied; the thread is untouched and the proposal still waits."""

    def __init__(self, message: str, pending: Proposal) -> None:
        super().__init__(message)
        self.pending = pending

    def result(self) -> ChatResult:
        return ChatResult(response=str(self), pending_approval=self.pending)


def typed_decision(command: SlashCommand | None, pending: Proposal | None) -> Decision | None:
    """A parsed `/approve [id]` or `/reject reason` (`command`, parse_slash's) as a decision on the pending
    proposal (None: not one, or nothing is pending).

    Raises DecisionRefused, keeping the proposal pending, when a typed command cannot be tied to the
    proposal the trader saw: an id shorter than the short id or not the pending one, a re-quoted
    proposal approved without its id, or a malformed slash command (which would otherwise abandon it).
    """
    if pending is None or not isinstance(command, DecisionCommand | SlashError):
        return None
    if isinstance(command, SlashError):
        raise DecisionRefused(f"{command.message}\nThe pending proposal still waits.", pending)
    proposal_id = pending["proposal_id"]
    short = proposal_id[:SHORT_ID]
    if command.decision == "approve":
        given = command.proposal_id.strip().lower()
        if given and len(given) < SHORT_ID:
            raise DecisionRefused(
                f"{given[:30]} is too short: give at least {SHORT_ID} characters of the id "
                f"({short}); nothing was done.",
                pending,
            )
        if given and not proposal_id.startswith(given):
            raise DecisionRefused(
                f"{given[:30]} is not the pending proposal ({short}); nothing was done.", pending
            )
        if not given and pending["requote_of"]:
            raise DecisionRefused(
                "The price or your account changed since you approved, so the trade was priced again "
                f"(above). Review it, then type /approve {short} to approve this new proposal.",
                pending,
            )
    return Decision(proposal_id=proposal_id, decision=command.decision, reason=command.reason)


COMMANDS = {"tool": ToolCommand, "decision": DecisionCommand, "help": HelpCommand, "error": SlashError}


def command_state(message: str, command: SlashCommand | None) -> JsonObject:
    """The message as parsed (`command`; None: plain chat), as the graph's `command` state: the facade parses
    a message once and the reason node reads it from there."""
    if command is None:
        return {"message": message, "type": "chat"}
    kind = next(k for k, cls in COMMANDS.items() if isinstance(command, cls))
    return {"message": message, "type": kind, **asdict(command)}


def command_of(state: JsonObject | None, message: str) -> SlashCommand | None:
    """The parsed command of `message`: command_state's, when it is this message's and readable; else the
    message parsed here (a run started without the facade, e.g. from Studio)."""
    cls = COMMANDS.get(str((state or {}).get("type")))
    if state is not None and state.get("message") == message and (cls or state.get("type") == "chat"):
        if cls is None:
            return None
        fields = {k: v for k, v in state.items() if k not in ("message", "type")}
        try:
            return cls(**fields)
        except TypeError:
            pass
    return parse_slash(message)
