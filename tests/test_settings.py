"""Settings: precedence env > YAML > defaults, and clear errors naming the bad key."""

from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_defaults_carry_the_seed_keys() -> None:
    s = load_settings()
    assert s.llm.provider == "ollama"
    assert s.redis.port == 6385 and s.redis.prefix == "llm:" and s.redis.ttl == 3600
    assert s.context.max_history == 10
    assert s.inference.temperature == 0.7 and s.inference.top_p == 0.9 and s.inference.max_tokens == 2048
    assert s.tools.timeout == 30 and s.tools.retry_count == 3
    assert s.server.port == 3602
    assert s.symbols["XAUUSD"].pip_size == 0.1 and s.symbols["XAUUSD"].contract_size == 100


def test_env_beats_yaml_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "copilot.yaml"
    user.write_text("llm:\n  model: from-yaml\nrisk:\n  min_risk_reward: 2.5\n")
    monkeypatch.setenv("COPILOT_CONFIG", str(user))
    s = load_settings()
    assert s.llm.model == "from-yaml"
    assert s.risk.min_risk_reward == 2.5
    assert s.llm.base_url == "http://localhost:11434"  # untouched keys keep their default
    monkeypatch.setenv("LLM__MODEL", "from-env")
    assert load_settings().llm.model == "from-env"


@pytest.mark.parametrize(
    ("env", "value", "key", "hint"),
    [
        ("LLM__PROVIDER", "vllm", "llm.provider", "'ollama' or 'openai'"),
        ("LLM__TOOL_MODE", "magic", "llm.tool_mode", "'auto', 'native' or 'json'"),
        ("REDIS__PORT", "99999", "redis.port", "less than or equal to 65535"),
        ("RISK__MIN_CONFIDENCE", "7", "risk.min_confidence", "less than or equal to 1"),
    ],
)
def test_bad_value_names_key_and_allowed_values(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str, hint: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert key in str(err.value) and hint in str(err.value)


def test_unknown_key_in_yaml_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "copilot.yaml"
    user.write_text("risk:\n  max_risk_pct: 5\n")
    monkeypatch.setenv("COPILOT_CONFIG", str(user))
    with pytest.raises(ConfigError, match=r"risk\.max_risk_pct"):
        load_settings()


def test_a_cross_pair_not_convertible_to_usd_is_rejected() -> None:
    eurjpy = {"digits": 3, "pip_size": 0.01, "contract_size": 100_000, "min_lot": 0.01, "max_lot": 10,
              "lot_step": 0.01, "quote_currency": "JPY"}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_settings(symbols={"EURJPY": eurjpy})
    assert "symbols.EURJPY" in str(err.value) and "JPY->USD rate" in str(err.value)
    # USD-based pairs convert with their own price: USDJPY with the same spec is fine
    assert load_settings(symbols={"USDJPY": eurjpy}).symbols["USDJPY"].quote_currency == "JPY"


def test_the_openai_provider_from_env_keeps_its_key_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM__PROVIDER", "openai")
    monkeypatch.setenv("LLM__BASE_URL", "http://gpu-box:8000/v1")
    monkeypatch.setenv("LLM__API_KEY", "sk-local-123")
    s = load_settings()
    assert (s.llm.provider, s.llm.base_url) == ("openai", "http://gpu-box:8000/v1")
    assert s.llm.api_key.get_secret_value() == "sk-local-123"
    assert "sk-local-123" not in repr(s) and "sk-local-123" not in str(s.model_dump())
