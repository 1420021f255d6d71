"""The key names of the project's multi-key transactions are built in tools/keys.py only, and each group maps
to one Redis Cluster slot."""

from __future__ import annotations

import re

from redis.crc import key_slot

from tests.support import ROOT
from tools.keys import AccountKeys, SessionKeys, account_of_notices, notices_key, replay_keys

# A key of these families spelled anywhere else (an f-string `…prefix}paper:…`, a literal hash tag) would
# leave the one place that keeps them in one slot.
STRAY = re.compile(
    r"\}(paper|notices|alerts|lock|cancel|turn|queued|fates|replay|ledger):(?!accounts)|\{(acct|sess):|\{replay\}"
)
OWNERS = {"tools/keys.py", "tools/key_migration.py"}


def test_no_key_of_a_transaction_is_spelled_outside_tools_keys() -> None:
    stray = []
    for folder in ("tools", "graph", "server", "config"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in OWNERS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if STRAY.search(line) and not line.lstrip().startswith(("#", '"""')):
                    stray.append(f"{name}:{number}: {line.strip()}")
    assert stray == []


def test_each_account_and_session_maps_to_one_slot() -> None:
    for account in ("paper", "paper-ana", "a}b", "x{y"):
        keys = AccountKeys("llm:", account)
        names = [keys.account, keys.positions, keys.closed, keys.realized, keys.orders, keys.fills,
                 keys.tickets, keys.alerts, keys.notices, keys.idem("k"), keys.observed("k")]  # fmt: skip
        assert len({key_slot(n.encode()) for n in names}) == 1, account
        assert account_of_notices("llm:", notices_key("llm:", account)) == account
    slots = {key_slot(AccountKeys("llm:", f"paper-u{i}").account.encode()) for i in range(20)}
    assert len(slots) > 10  # accounts spread over the cluster
    notes = SessionKeys("llm:", "ana:s1")
    assert (
        len(
            {
                key_slot(k.encode())
                for k in (
                    notes.lease,
                    notes.cancel,
                    notes.turn,
                    notes.queued,
                    notes.fates,
                    notes.live_contexts,
                    notes.live_context_order,
                )
            }
        )
        == 1
    )
    assert len({key_slot(k.encode()) for k in replay_keys("llm:")}) == 1
