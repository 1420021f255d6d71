"""Where settings come from, read so that a bad value reaches validation (which names its key) intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, YamlConfigSettingsSource

from config.validation import ConfigError


class LenientEnvSource(EnvSettingsSource):
    """Environment variables; a value that should be JSON (a list, a mapping) but is not stays a string, so
    validation says `server.api_keys: Input should be a valid dictionary` instead of the library's
    `error parsing value for field "server"`, which names neither the key nor what it wants."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


class UserYamlSource(YamlConfigSettingsSource):
    """The packaged YAML and the one named by COPILOT_CONFIG, deep-merged; a file that is not YAML, or not a
    mapping of sections, is one ConfigError naming the file and the line."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = yaml.safe_load(Path(file_path).read_text(encoding=self.yaml_file_encoding or "utf-8"))
        except OSError as exc:
            raise ConfigError(f"COPILOT_CONFIG ({file_path}): cannot read it: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"COPILOT_CONFIG ({file_path}): not valid YAML: {_yaml_problem(exc)}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"COPILOT_CONFIG ({file_path}): expected a mapping of sections (llm:, risk:, …), "
                f"got a {type(data).__name__}"
            )
        return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def merge_symbol_names(symbols: dict[Any, Any]) -> dict[Any, Any]:
    """symbols keyed by upper-case name, entries naming one symbol in another case deep-merged in order
    (later sources come later in the merged mapping, so they win)."""
    merged: dict[Any, Any] = {}
    for name, spec in symbols.items():
        key = name.upper() if isinstance(name, str) else name
        if isinstance(merged.get(key), dict) and isinstance(spec, dict):
            merged[key] = _deep_merge(merged[key], spec)
        else:
            merged[key] = spec
    return merged


def _deep_merge(base: dict[Any, Any], update: dict[Any, Any]) -> dict[Any, Any]:
    out = dict(base)
    for key, value in update.items():
        both = isinstance(out.get(key), dict) and isinstance(value, dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out
