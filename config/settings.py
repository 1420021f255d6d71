"""One pydantic-settings object; precedence: env vars > user YAML (COPILOT_CONFIG) > config/default.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from config.sources import LenientEnvSource, UserYamlSource, merge_symbol_names
from config.validation import ConfigError, settings_error_line
from config.values import (
    Timeframe,
    check_api_keys,
    check_metrics_key,
    check_redis_url,
    check_replay_start,
    check_service_url,
    check_telegram_chats,
)

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


class _Section(BaseModel):
    # inf and nan are refused everywhere: `min_risk_reward: inf` would block every trade, `max_lots: inf` none
    model_config = {"extra": "forbid", "allow_inf_nan": False}


class LLMSettings(_Section):
    # ollama: Ollama's own API (/api/chat); openai: any OpenAI-compatible chat-completions server (vLLM,
    # llama.cpp's llama-server, llama-cpp-python, LM Studio, Ollama's /v1), base_url ending in /v1.
    provider: Literal["ollama", "openai"] = "ollama"
    model: str = "llama3.1:8b-instruct-q5_K_M"
    base_url: str = "http://localhost:11434"
    # Sent as a bearer token to an OpenAI-compatible server (never logged); empty = none.
    api_key: SecretStr = SecretStr("")
    # auto: ask the server whether the model calls tools (Ollama: /api/show; openai: native); native/json
    # force a mode.
    tool_mode: Literal["auto", "native", "json"] = "auto"
    num_ctx: int = Field(8192, ge=512)
    keep_alive: str = "30m"
    request_timeout: float = Field(120.0, gt=0)
    # Chat with `<model>-copilot` (tool list in the system block; `copilot model install`) when Ollama has it.
    use_copilot_model: bool = True


class InferenceSettings(_Section):
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    max_tokens: int = Field(2048, ge=1)
    repeat_penalty: float = Field(1.1, ge=0)
    stop_sequences: list[str] = []


class ContextSettings(_Section):
    max_history: int = Field(10, ge=1)
    include_market_context: bool = True
    include_portfolio: bool = True
    market_cache_ttl: int = Field(60, ge=0)
    portfolio_cache_ttl: int = Field(30, ge=0)
    max_tool_rounds: int = Field(4, ge=1)


class RedisSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(6385, ge=1, le=65535)
    db: int = Field(0, ge=0)
    prefix: str = "llm:"
    ttl: int = Field(3600, ge=0)
    data_dir: str = "var/redis"


# --- checkpoint pruning (issue 21 part 4) ---
class CheckpointSettings(_Section):
    # The newest checkpoints kept per thread (0 = keep all until the TTL); a checkpoint holding an approval's
    # interrupt or its decision is kept besides (graph.checkpointer.prune_thread).
    keep_last: int = Field(20, ge=0)
    # Pruning (two index searches) runs after every `prune_every`-th run of a session (at most keep_last / 2;
    # and its first), and then keeps `keep_last - prune_every + 1`, so between prunes a session of chat turns
    # stays within keep_last (graph.copilot.Copilot._prune).
    prune_every: int = Field(4, ge=1)


class ToolSettings(_Section):
    timeout: float = Field(30, gt=0)
    retry_count: int = Field(3, ge=0)
    parallel_execution: bool = True


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str | None = "logs/llm_service.log"


class RiskSettings(_Section):
    max_risk_per_trade_pct: float = Field(1.0, gt=0, le=100)
    min_risk_reward: float = Field(1.5, ge=0)
    min_confidence: float = Field(0.60, ge=0, le=1)
    blocked_amd_phases: list[str] = ["manipulation"]
    daily_loss_limit_pct: float = Field(3.0, gt=0, le=100)
    max_open_positions: int = Field(3, ge=0)
    max_lots_per_symbol: float = Field(2.0, gt=0)
    allowed_symbols: list[str] = ["XAUUSD", "EURUSD", "GBPUSD", "USDJPY"]
    proposal_ttl_seconds: int = Field(300, ge=10)
    max_price_drift_pct: float = Field(0.05, ge=0)
    # A quote older than this (market time) means the market is closed: no new trades.
    max_quote_age_seconds: int = Field(900, ge=60)
    # The gate always checks the signal on this timeframe, never the one the model last asked about.
    signal_timeframe: Timeframe = "5m"
    # Block a BUY when the current signal says SHORT, a SELL when it says LONG (HOLD does not block).
    block_against_signal: bool = True

    @field_validator("allowed_symbols")
    @classmethod
    def _some_symbol(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one symbol to trade, e.g. ["XAUUSD"]')
        return [symbol.strip().upper() for symbol in value]  # symbols are keyed upper-case everywhere


class ServiceURLs(_Section):
    """Empty URL = use the embedded implementation (CSV market data, technical engine, paper broker)."""

    ml_engine_url: str = ""
    trading_url: str = ""
    data_url: str = ""

    _urls = field_validator("ml_engine_url", "trading_url", "data_url")(check_service_url)


class SymbolSpecSettings(_Section):
    digits: int = Field(ge=0, le=8)
    pip_size: float = Field(gt=0)
    contract_size: float = Field(gt=0)
    min_lot: float = Field(gt=0)
    max_lot: float = Field(gt=0)
    lot_step: float = Field(gt=0)
    quote_currency: str = "USD"
    spread_pips: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _lots_ordered(self) -> SymbolSpecSettings:
        if self.min_lot > self.max_lot:
            raise ValueError("min_lot must not exceed max_lot")
        return self


class ReplaySettings(_Section):
    # Where in the history the replay clock starts: ISO datetime (UTC), or "auto" = 30 days before the end.
    start: str = "auto"
    speed: float = Field(1.0, gt=0)

    _start = field_validator("start")(check_replay_start)


class BrokerSettings(_Section):
    account_currency: Literal["USD"] = "USD"
    initial_balance: float = Field(10_000.0, gt=0)
    leverage: float = Field(100.0, gt=0)
    slippage_pips: float = Field(0.0, ge=0)
    # How often the server checks SL/TP and price alerts against the bars the clock has revealed.
    tick_seconds: float = Field(5.0, gt=0)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3602, ge=1, le=65535)
    # API key -> user id. Empty mapping = local single-user mode (user "local", no key required).
    api_keys: dict[str, str] = {}
    max_body_bytes: int = Field(64_000, ge=1024)
    max_message_chars: int = Field(4000, ge=1)
    busy_policy: Literal["reject", "wait"] = "reject"
    # A run's session lease (renewed every third of it while the run lives), and how long `wait` queues.
    run_lease_seconds: float = Field(6.0, ge=1, le=60)
    busy_wait_seconds: float = Field(120.0, ge=1)
    # The bearer token Prometheus scrapes /metrics with; with api_keys set, /metrics needs it (no user key).
    metrics_key: str | None = None

    _keys = field_validator("api_keys")(check_api_keys)

    @model_validator(mode="after")
    def _metrics_key_of_its_own(self) -> ServerSettings:
        check_metrics_key(self.metrics_key, self.api_keys)
        return self


class TelegramSettings(_Section):
    """The Telegram bot (server/telegram/): off while bot_token is empty."""

    bot_token: SecretStr = SecretStr("")  # from @BotFather; a secret (never logged)
    # Telegram chat id -> the user of server.api_keys whose account and sessions that chat uses.
    allowed_chats: dict[int, str] = {}
    # The bot calls {api_base_url}/bot{token}/{method} (a local Bot API server, or a test double).
    api_base_url: str = "https://api.telegram.org"
    # Only one worker of the deployment polls: the holder of this Redis lease (a standby takes over
    # within one lease after the holder dies).
    lease_seconds: float = Field(10.0, ge=1, le=120)
    poll_timeout: int = Field(25, ge=0, le=50)  # getUpdates long polling, seconds

    _url = field_validator("api_base_url")(check_service_url)

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token.get_secret_value())


class ScaleSettings(_Section):
    """Running N workers on one Redis (README "Running at scale")."""

    # The lease of the deployment's one ticker (tools/leader.py): a standby takes over within it after the
    # holder dies; the holder renews it every third of it.
    leader_lease_seconds: float = Field(10.0, ge=1, le=120)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="forbid", case_sensitive=False)

    llm: LLMSettings = LLMSettings()
    inference: InferenceSettings = InferenceSettings()
    context: ContextSettings = ContextSettings()
    redis: RedisSettings = RedisSettings()
    checkpoints: CheckpointSettings = CheckpointSettings()
    tools: ToolSettings = ToolSettings()
    logging: LoggingSettings = LoggingSettings()
    risk: RiskSettings = RiskSettings()
    services: ServiceURLs = ServiceURLs()
    replay: ReplaySettings = ReplaySettings()
    broker: BrokerSettings = BrokerSettings()
    server: ServerSettings = ServerSettings()
    telegram: TelegramSettings = TelegramSettings()
    scale: ScaleSettings = ScaleSettings()
    symbols: dict[str, SymbolSpecSettings] = {}
    # A full Redis URL (production); when set, no embedded Redis is started.
    redis_url: str | None = None
    data_dir: str = "data"
    # Used by `make run` when data_dir has no CSV files.
    fallback_data_dir: str = "../shared/data"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files: list[Path] = [DEFAULT_YAML]
        user_file = os.environ.get("COPILOT_CONFIG")
        if user_file:
            path = Path(user_file)
            if not path.is_file():
                raise ConfigError(f"COPILOT_CONFIG: file not found: {path}")
            files.append(path)
        yaml_source: YamlConfigSettingsSource = UserYamlSource(settings_cls, yaml_file=files, deep_merge=True)
        # Not JSON where JSON is due (SERVER__API_KEYS=k:alice) is left to validation, which names the key.
        return (init_settings, LenientEnvSource(settings_cls), yaml_source)

    @model_validator(mode="before")
    @classmethod
    def _symbol_names_upper_case(cls, data: object) -> object:
        # SYMBOLS__XAUUSD__SPREAD_PIPS arrives as symbols.xauusd (env names are case-insensitive): merged into
        # the YAML's XAUUSD entry, so one field of a symbol can be overridden.
        if isinstance(data, dict) and isinstance(data.get("symbols"), dict):
            data = {**data, "symbols": merge_symbol_names(data["symbols"])}
        return data

    _redis_url = field_validator("redis_url")(check_redis_url)

    @model_validator(mode="after")
    def _symbols_convertible_to_usd(self) -> Settings:
        # SymbolSpec.money turns a quote-currency amount into USD by dividing by the symbol's own price,
        # which is right only for USD-quoted pairs and USD-based ones (USDJPY); a cross would be mispriced.
        for name, spec in self.symbols.items():
            if spec.quote_currency.upper() != "USD" and not name.upper().startswith("USD"):
                raise ValueError(
                    f"symbols.{name}.quote_currency: {spec.quote_currency} is supported only for USD-based "
                    f"pairs (USD{spec.quote_currency}); risk in USD for {name} would need a "
                    f"{spec.quote_currency}->USD rate the copilot does not have"
                )
        return self

    @model_validator(mode="after")
    def _allowed_symbols_configured(self) -> Settings:
        # The model's trade tools accept only symbols that are both allowed and configured: none is no tool.
        known = ", ".join(sorted(self.symbols))
        for symbol in self.risk.allowed_symbols:
            if symbol.upper() not in self.symbols:
                raise ValueError(f"risk.allowed_symbols: {symbol!r} is not in symbols (configured: {known})")
        return self

    @model_validator(mode="after")
    def _telegram_chats_are_users(self) -> Settings:
        check_telegram_chats(self.telegram.allowed_chats, self.server.api_keys)
        return self

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://{self.redis.host}:{self.redis.port}/{self.redis.db}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings; a bad value is one ConfigError line naming each bad key and what it allows."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(settings_error_line(exc.errors(), Settings)) from None
    except SettingsError as exc:  # a source that could not be read at all (the lenient ones rarely raise)
        raise ConfigError(f"invalid configuration: {exc} ({exc.__cause__})") from None
