"""Per-trader preferences: language, the symbol and timeframe of a new session, the risk per trade, notices.

Stored in the Redis hash `{redis.prefix}user_prefs:{user_id}` (the design's `llm:user_prefs:{user_id}`), one
field per preference the trader set, with no expiry. A field the trader never set reads as its default
(`risk_per_trade_pct`: the configured cap), so a default the operator changes reaches every such trader.
Every client goes through here: the HTTP API (GET/PUT /api/preferences), `/prefs` in any chat (the copilot
facade), the risk gate (via the run's Context), the prompt's language line and the Telegram bot's notices.

The bounds depend on the settings (the known symbols, `risk.max_risk_per_trade_pct`), so the models are built
per settings (`preference_models`): the OpenAPI document then states the very bounds the server enforces.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from config.values import TIMEFRAMES, Timeframe
from tools.context import DEFAULT_SYMBOL

if TYPE_CHECKING:
    from tools.services import Services

Language = Literal["es", "en", "auto"]
NotifyKind = Literal["fills", "closes", "alerts", "expiries"]
NOTIFY_KINDS: tuple[str, ...] = get_args(NotifyKind)
ALL_NOTICES: list[NotifyKind] = ["fills", "closes", "alerts", "expiries"]
FIELDS = ("language", "symbol", "timeframe", "risk_per_trade_pct", "notify")
DEFAULT_TIMEFRAME: Timeframe = "15m"


class Preferences(BaseModel):
    """A trader's preferences, defaults filled in (what GET /api/preferences answers)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    language: Language = Field("auto", description="the language the copilot answers in; auto: the trader's")
    symbol: str = Field(DEFAULT_SYMBOL, description="the symbol a new session starts on")
    timeframe: Timeframe = Field(DEFAULT_TIMEFRAME, description="the chart timeframe a new session starts on")
    risk_per_trade_pct: float = Field(
        1.0,
        gt=0,
        description="% of equity a trade may risk (sizes the proposals); at most risk.max_risk_per_trade_pct",
    )
    notify: list[NotifyKind] = Field(
        default_factory=lambda: list(ALL_NOTICES),
        description="which notices are pushed (Telegram, the live feed): fills, closes, alerts, expiries",
    )

    def notifies(self, kind: str) -> bool:
        return kind in self.notify


@dataclass(frozen=True)
class PreferenceModels:
    """The view (GET) and the update (PUT, any subset) for one configuration's bounds."""

    view: type[Preferences]
    update: type[BaseModel]
    cap_pct: float
    symbols: tuple[str, ...]


@lru_cache(maxsize=16)
def preference_models(symbols: tuple[str, ...], cap_pct: float) -> PreferenceModels:
    """Models whose schema carries this configuration's symbols and risk cap (the same class for the same
    configuration, so FastAPI names one schema)."""
    symbol_type: Any = Literal[symbols] if symbols else str
    default_symbol = DEFAULT_SYMBOL if DEFAULT_SYMBOL in symbols or not symbols else symbols[0]
    risk_doc = f"% of equity a trade may risk (sizes the proposals); at most the cap, {cap_pct:g}"
    view = create_model(
        "Preferences",
        __base__=Preferences,
        symbol=(symbol_type, Field(default_symbol, description="the symbol a new session starts on")),
        risk_per_trade_pct=(float, Field(cap_pct, gt=0, le=cap_pct, description=risk_doc)),
    )
    update = create_model(
        "PreferencesUpdate",
        __config__=ConfigDict(extra="forbid", allow_inf_nan=False, strict=True),
        __doc__="Any subset of the preferences; the fields left out stay as they are.",
        language=(Language | None, Field(None, description="es, en or auto")),
        symbol=(symbol_type | None, Field(None, description="the symbol a new session starts on")),
        timeframe=(Timeframe | None, Field(None, description=f"one of {', '.join(TIMEFRAMES)}")),
        risk_per_trade_pct=(float | None, Field(None, gt=0, le=cap_pct, description=risk_doc)),
        notify=(list[NotifyKind] | None, Field(None, description="which notices are pushed")),
    )
    return PreferenceModels(view, update, cap_pct, symbols)


def models_for(settings: Any) -> PreferenceModels:
    """The models of this configuration (config.Settings): its symbols (as tools.market.specs keys them)
    and its cap; the same classes the copilot's PreferenceStore validates with."""
    symbols = tuple(name.upper() for name in settings.symbols)
    return preference_models(symbols, float(settings.risk.max_risk_per_trade_pct))


class BadPreference(ValueError):
    """A preference out of bounds, of the wrong type or unknown; `errors` are pydantic's, naming the field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())) or 'preferences'}: {e.get('msg')}"
                for e in errors
            )
        )


def _encode(name: str, value: Any) -> str:
    if name == "notify":
        return json.dumps(sorted(set(value), key=NOTIFY_KINDS.index))
    return repr(float(value)) if name == "risk_per_trade_pct" else str(value)


class PreferenceStore:
    """Reads and writes the traders' preferences; one per process (cheap: a Redis client and the bounds)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, symbols: Iterable[str], cap_pct: float) -> None:
        self.redis, self.prefix = redis, prefix
        self.models = preference_models(tuple(symbols), float(cap_pct))

    @classmethod
    def of(cls, services: Services) -> PreferenceStore:
        """The store of these services: their Redis and prefix, their known symbols, the configured cap."""
        settings = services.settings
        return cls(
            services.redis, settings.redis.prefix, services.specs, settings.risk.max_risk_per_trade_pct
        )

    def key(self, user_id: str) -> str:
        return f"{self.prefix}user_prefs:{user_id}"

    def parse(self, stored: Mapping[Any, Any]) -> Preferences:
        """The stored hash with defaults filled in. A stored value the bounds no longer allow (the operator
        lowered the cap, removed a symbol) reads as the nearest allowed one: the cap, the default."""
        values: dict[str, Any] = {}
        for name in FIELDS:
            raw = stored.get(name)
            if raw is None:
                continue
            value: Any = json.loads(raw) if name == "notify" else raw
            if name == "risk_per_trade_pct":
                value = float(raw)
                if not math.isfinite(value) or value <= 0:
                    continue
                value = min(value, self.models.cap_pct)
            values[name] = value
        try:
            return self.models.view.model_validate(values)
        except ValidationError as bad:  # keep the fields that still validate
            wrong = {str(e["loc"][0]) for e in bad.errors() if e.get("loc")}
            return self.models.view.model_validate({k: v for k, v in values.items() if k not in wrong})

    def validate(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The changes as stored values' sources (only the fields given); BadPreference naming the field."""
        try:
            update = self.models.update.model_validate(dict(changes))
        except ValidationError as bad:
            raise BadPreference([dict(e) for e in bad.errors()]) from None
        return update.model_dump(exclude_unset=True)

    async def get(self, user_id: str) -> Preferences:
        return self.parse(await self.redis.hgetall(self.key(user_id)))

    async def update(self, user_id: str, changes: Mapping[str, Any]) -> Preferences:
        """Apply a subset (validated first: nothing is stored when any field is wrong); the result."""
        valid = self.validate(changes)
        key = self.key(user_id)
        set_: dict[Any, Any] = {n: _encode(n, v) for n, v in valid.items() if v is not None}
        unset = [name for name, value in valid.items() if value is None]  # null: back to the default
        async with self.redis.pipeline(transaction=True) as pipe:
            if set_:
                pipe.hset(key, mapping=set_)
            if unset:
                pipe.hdel(key, *unset)
            pipe.hgetall(key)
            replies = await pipe.execute()
        return self.parse(replies[-1])

    def effective_risk_pct(self, prefs: Preferences) -> float:
        """The risk the gate sizes with: the trader's, never above the cap."""
        return min(prefs.risk_per_trade_pct, self.models.cap_pct)


def preferences_text(prefs: Preferences, cap_pct: float) -> str:
    """The preferences as `/prefs` shows them (every chat: web page, CLI, Telegram)."""
    notify = ", ".join(prefs.notify) or "none"
    return "\n".join(
        [
            "Your preferences / Tus preferencias:",
            f"- language: {prefs.language}  (/prefs language es|en|auto)",
            f"- symbol: {prefs.symbol}, timeframe: {prefs.timeframe}  (a new session starts on them; "
            "/prefs symbol EURUSD, /prefs timeframe 1h)",
            f"- risk per trade: {prefs.risk_per_trade_pct:g} % of equity, cap {cap_pct:g} %  "
            "(/prefs risk 0.5)",
            f"- notify: {notify}  (/prefs notify fills,closes,alerts,expiries or none)",
        ]
    )
