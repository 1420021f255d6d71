"""Move the keys of earlier versions to the hash-tagged names of tools/keys.py, once per process and prefix.

Earlier versions kept an account's ledger under `{prefix}paper:<account>:…`, its alerts at
`{prefix}alerts:<a>`, its notices at `{prefix}notices:<a>` (and `…:observed:<key>`), a thread's run notes at
`{prefix}turn|queued|fates:<thread>` and the replay clock at `{prefix}replay:anchor|server`. build_services
runs `migrate_keys` before any service touches Redis: one SCAN of the prefix, then RENAMENX of each old key to
its new name, so a key is moved only while the new name is free (a ledger already written under the new names
is never overwritten), and processes starting together are safe: a key another process moved first is simply
gone (its RENAMENX answers "no such key"), and each process has moved or seen moved every old key before it
serves. RENAME keeps the value, its TTL and a stream's entry ids (the notices' Last-Event-IDs stay valid).

A process that finished the SCAN writes `{prefix}keys:layout` (LAYOUT): every later start reads that one
key instead of scanning the whole prefix again (the SCAN costs one round trip per 1,000 keys, checkpoints
included, at each start of a server or a CLI command).

Not moved: run and account leases (they live seconds; stop the old version's processes before starting this
one, as for any upgrade: old and new processes would not see each other's leases or ledgers). On a Redis
Cluster it does nothing (earlier versions could not write a ledger there: their WATCH spanned slots).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import ResponseError

from tools.keys import AccountKeys, SessionKeys, replay_keys
from tools.redis_clients import is_cluster, reply_text_or_none

log = logging.getLogger("copilot.keys")

_LEDGER = {
    "account": "account",
    "positions": "positions",
    "closed": "closed",
    "realized": "realized",
    "orders": "orders",
    "fills": "fills",
    "ticket_seq": "tickets",
}
_SHARED = {"paper:accounts", "paper:ticket_seq", "alerts:accounts"}  # plain names, not per account
_NOTES: dict[str, Callable[[SessionKeys], str]] = {
    "turn:": lambda k: k.turn,
    "queued:": lambda k: k.queued,
    "fates:": lambda k: k.fates,
}
_done: set[str] = set()
LAYOUT = "hash-tags-1"  # the key layout tools/keys.py names; written once the old names are all moved


def layout_key(prefix: str) -> str:
    return f"{prefix}keys:layout"


def new_name(prefix: str, key: str) -> str | None:
    """The current name of `key` when it is a key of an earlier version's layout, else None."""
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if rest in _SHARED:
        return None
    if rest.startswith("paper:"):
        body = rest[len("paper:") :]
        if ":idem:" in body:
            account, idem = body.split(":idem:", 1)
            return AccountKeys(prefix, account).idem(idem)
        account, _, field = body.rpartition(":")
        attr = _LEDGER.get(field)
        return str(getattr(AccountKeys(prefix, account), attr)) if account and attr else None
    if rest.startswith("alerts:"):
        return AccountKeys(prefix, rest[len("alerts:") :]).alerts
    if rest.startswith("notices:"):
        body = rest[len("notices:") :]
        if ":observed:" in body:
            account, idem = body.split(":observed:", 1)
            return AccountKeys(prefix, account).observed(idem)
        return AccountKeys(prefix, body).notices
    for head, name in _NOTES.items():
        if rest.startswith(head) and rest[len(head) :]:
            return name(SessionKeys(prefix, rest[len(head) :]))
    anchor, server = replay_keys(prefix)
    return {"replay:anchor": anchor, "replay:server": server}.get(rest)


async def migrate_keys(redis: Any, prefix: str) -> int:
    """Move the old-named keys under `prefix` (see the module's text); the number moved. Once per process and
    prefix; nothing on a cluster."""
    if prefix in _done or is_cluster(redis):
        return 0
    if reply_text_or_none(await redis.get(layout_key(prefix))) == LAYOUT:  # moved at an earlier start
        _done.add(prefix)
        return 0
    moved = kept = 0
    async for raw in redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        target = new_name(prefix, key)
        if target is None:
            continue
        try:
            if await redis.renamenx(key, target):
                moved += 1
            else:
                kept += 1
        except ResponseError as exc:  # moved by another process meanwhile
            if "no such key" not in str(exc).lower():
                raise
    if moved:
        log.info("moved %d keys of %s to the hash-tagged names (tools/keys.py)", moved, prefix)
    if kept:
        log.warning(
            "%d keys of %s exist under both the old and the new name; the new ones are used, the old ones "
            "kept (was an earlier version still running?)",
            kept,
            prefix,
        )
    await redis.set(layout_key(prefix), LAYOUT)
    _done.add(prefix)
    return moved


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
