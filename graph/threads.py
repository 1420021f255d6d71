"""Who a thread belongs to: the user and session ids that name it, and the user's broker account."""

from __future__ import annotations

import re

from config.values import ID_PATTERN

_ID = re.compile(ID_PATTERN)


class InvalidId(ValueError):
    """A user or session id the copilot does not accept (empty, too long, or with ':')."""


def thread_id(user_id: str, session_id: str) -> str:
    for label, value in (("user id", user_id), ("session id", session_id)):
        if not _ID.match(value or ""):
            raise InvalidId(f"{label} must be 1-128 letters, digits or . _ @ - (got {value!r})")
    return f"{user_id}:{session_id}"


def account_for(user_id: str) -> str:
    """Each user trades their own paper account; the single local user keeps the default one."""
    return "paper" if user_id == "local" else f"paper-{user_id}"
