"""The Redis key names of every multi-key operation of the project's own code, in one place.

Each group of keys that one transaction (WATCH/MULTI, a Lua script, a multi-key DEL) touches shares one Redis
Cluster hash tag (the first `{…}` of the name), so it maps to one slot and runs on a cluster as on one Redis:

    {prefix}{acct:<account>}:<name>          one account: the paper ledger (balance, positions, closed trades,
                                             realized P&L, orders, fills, tickets, idempotency records), its
                                             alerts, its notice stream and the observed-fill markers
    {prefix}{sess:<user>:<session>}:<name>   one session (its thread `<user>:<session>`): its run lease and
                                             cancel request, its run notes (turn in flight, queued decision,
                                             fates), its turns' live-context texts
                                             (graph/live_contexts.py); the account lease
                                             `{prefix}account:{sess:broker:<a>}`
    {prefix}{replay}:<name>                  the replay clock's anchor and the running server's heartbeat

Keys that are never in a transaction with another key keep their plain names (the sets of accounts the
ticker walks, preferences, checkpoints, the leader lease). Names of earlier versions are moved to these
on start by tools/key_migration.py.
"""

from __future__ import annotations


def account_base(prefix: str, account_id: str) -> str:
    return f"{prefix}{{acct:{account_id}}}:"


def session_base(prefix: str, thread: str) -> str:
    """`thread` is graph.threads.thread_id(user, session), i.e. `<user>:<session>`."""
    return f"{prefix}{{sess:{thread}}}:"


class AccountKeys:
    """One account's keys (tools/broker/ledger.py writes the ledger's, tools/notices.py the stream)."""

    def __init__(self, prefix: str, account_id: str) -> None:
        self.base = account_base(prefix, account_id)
        self.account = self.base + "ledger:account"  # hash: balance_usd
        self.positions = self.base + "ledger:positions"  # hash: ticket -> OpenPosition JSON
        self.closed = self.base + "ledger:closed"  # list of ClosedTrade JSON, append-only
        self.realized = self.base + "ledger:realized"  # zset: "ticket:pnl" scored by close time (epoch s)
        self.orders = self.base + "ledger:orders"  # list of order/close/modify records, append-only
        self.fills = self.base + "ledger:fills"  # stream of fills, append-only
        self.tickets = self.base + "ledger:ticket_seq"  # per account
        self.alerts = self.base + "alerts"  # hash: alert_id -> alert JSON
        self.notices = self.base + "notices"  # the account's notice stream

    def idem(self, key: str) -> str:
        return self.base + "ledger:idem:" + key

    def observed(self, key: str) -> str:
        """The marker that a platform fill observed under idempotency key `key` was announced."""
        return self.base + "notices:observed:" + key


def notices_key(prefix: str, account_id: str) -> str:
    return AccountKeys(prefix, account_id).notices


def account_of_notices(prefix: str, key: str) -> str:
    """The account whose notice stream `key` is (the inverse of notices_key)."""
    head, tail = account_base(prefix, ""), "}:notices"
    return key[len(head) - 2 : -len(tail)]


class SessionKeys:
    def __init__(self, prefix: str, thread: str) -> None:
        base = session_base(prefix, thread)
        self.lease = base + "lease"  # the run lease (owner token), SET NX PX
        self.cancel = base + "cancel"  # a request to stop the run holding the lease
        self.turn = base + "turn"  # a chat turn in flight
        self.queued = base + "queued"  # a decision waiting for the session
        self.fates = base + "fates"  # the newest proposals' ends, newest first
        self.live_contexts = base + "live_context"  # hash: message id -> the turn's live-context text
        self.live_context_order = base + "live_context_order"  # zset: those ids by when they were pinned


def replay_keys(prefix: str) -> tuple[str, str]:
    """The replay anchor and the running server's heartbeat (one Lua script writes both)."""
    return f"{prefix}{{replay}}:anchor", f"{prefix}{{replay}}:server"


def paper_accounts_key(prefix: str) -> str:
    return f"{prefix}paper:accounts"  # set of paper account ids (the ticker walks it); never in a MULTI


def alert_accounts_key(prefix: str) -> str:
    return f"{prefix}alerts:accounts"  # set of accounts with alerts; never in a MULTI


def legacy_tickets_key(prefix: str) -> str:
    return f"{prefix}paper:ticket_seq"  # the shared ticket counter of versions before per-account tickets
