"""One wording for validation errors (settings, tool arguments, HTTP bodies): `key.path: message`."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

# Settings whose values are secrets: an error about them never repeats what was given.
SECRET_KEYS = {"api_keys", "metrics_key", "redis_url", "bot_token"}
# How a list or a mapping is written in an environment variable (pydantic-settings reads JSON there).
_JSON_HINTS = {
    "list_type": """ (in an environment variable: a JSON list, e.g. '["XAUUSD", "EURUSD"]')""",
    "dict_type": """ (in an environment variable: a JSON object, e.g. '{"KEY": "VALUE"}')""",
    "model_type": """ (in an environment variable: a JSON object, e.g. '{"KEY": "VALUE"}')""",
}


class ConfigError(ValueError):
    """A setting has a value the copilot cannot run with; the message is one line naming the key."""


def error_parts(errors: Iterable[Mapping[str, Any]], root: str, show_input: bool = False) -> list[str]:
    """`where: message` per pydantic error; `root` names a value with no location; the HTTP wrapper
    `body` is left out of paths. `show_input` adds what was given (for settings, never for secrets' dicts)."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or root
        got = err.get("input")
        shown = f" (got {got!r})" if show_input and not isinstance(got, dict) else ""
        parts.append(f"{where}: {err.get('msg', 'invalid')}{shown}")
    return parts


def settings_error_line(errors: Iterable[Mapping[str, Any]], model: type[BaseModel] | None = None) -> str:
    """A settings ValidationError on ONE line: `invalid configuration: key: what is allowed (got …); …`.
    Errors raised by model validators carry no location: their message starts with the key it names."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        kind, got = err.get("type", ""), err.get("input")
        if kind == "extra_forbidden":
            known = _known_keys(model, loc[:-1]) if model is not None else []
            message = "unknown key" + (f"; known: {', '.join(known)}" if known else "")
        elif kind == "missing":
            message = "required"
        secret = SECRET_KEYS.intersection(loc)
        if not secret and kind not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
            message += f" (got {got!r})"
        if isinstance(got, str):
            message += _JSON_HINTS.get(kind, "")
        parts.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "invalid configuration: " + "; ".join(parts)


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """The field names of the section at `path` (through sub-models and the values of mappings)."""
    node: Any = model
    for part in path:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:
            return []
        if typing.get_origin(node) in (typing.Union, types.UnionType):
            node = next((a for a in typing.get_args(node) if a is not type(None)), node)
    return sorted(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []
