"""One wording for validation errors (settings, tool arguments, HTTP bodies): `key.path: message`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


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
