"""The Redis checkpointer: AsyncRedisSaver on the configured Redis, keys under the project prefix, TTL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, TypedDict

from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer
from langgraph.checkpoint.redis.key_registry import CheckpointKeyRegistry
from langgraph.checkpoint.redis.util import to_storage_safe_id
from redisvl.exceptions import RedisSearchError
from redisvl.query import FilterQuery
from redisvl.query.filter import Tag

from config import Settings
from tools.redis_clients import async_client, is_cluster

# Chat turns use "exit": one checkpoint per run, written before ainvoke/astream return (so a pending
# approval is on Redis before the API answers). bench/bench_checkpoint.py, 100 turns of
# model -> tool -> model: exit ~24 ms/turn and ~1 Redis key per turn; sync/async ~44 ms and ~30 keys per
# turn. A crash mid-turn only loses that turn's message, which the trader sends again.
# Decisions (resume -> execute -> reason) use "sync": every step is durable before the next starts, so
# once the order is sent its outcome is checkpointed before the model narrates it. Even if a crash hit
# in between, re-approving replays the same idempotency key and the broker places nothing new.
DURABILITY_CHAT: Literal["sync", "async", "exit"] = "exit"
DURABILITY_DECISION: Literal["sync", "async", "exit"] = "sync"


class CachedConstructorSerializer(JsonPlusRedisSerializer):
    """The saver's serializer, remembering the class each stored constructor names. As shipped it imports the
    named module for every message it revives, and for messages stored under the legacy path
    (`langchain.schema.messages`, a package not installed here) that is a failed search of the whole sys.path
    each time: measured 4.6 ms to revive 40 messages, 1.7 ms with this cache (bench_stack's profile)."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[tuple[str, ...], type[Any] | str] = {}

    def _constructor_class(self, obj: dict[str, Any]) -> type[Any]:
        id_parts = obj.get("id")
        if not isinstance(id_parts, list) or not all(isinstance(p, str) for p in id_parts):
            return super()._constructor_class(obj)
        key = tuple(id_parts)
        if key not in self._classes:
            try:
                self._classes[key] = super()._constructor_class(obj)
            except ValueError as exc:
                self._classes[key] = str(exc)
        found = self._classes[key]
        if isinstance(found, str):
            raise ValueError(found)  # as the parent does, so its fallback to langchain_core's reviver runs
        return found


class TtlConfig(TypedDict):
    """AsyncRedisSaver's `ttl` option: minutes a checkpoint lives, and whether reading it renews that."""

    default_ttl: float
    refresh_on_read: bool


def ttl_config(settings: Settings) -> TtlConfig | None:
    """The saver counts TTL in minutes; settings.redis.ttl is seconds (0 = keep forever)."""
    if settings.redis.ttl <= 0:
        return None
    return TtlConfig(default_ttl=max(settings.redis.ttl / 60, 1 / 60), refresh_on_read=True)


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[AsyncRedisSaver]:
    """An AsyncRedisSaver with its own connection, indexes created, closed on exit."""
    prefix = settings.redis.prefix
    # Our own client (bytes, as the saver expects): the saver's URL factory is deprecated.
    client = async_client(settings.effective_redis_url, decode_responses=False)
    if is_cluster(client):
        await client.initialize()  # the index set-up asks for a node before any command has run
    ttl = ttl_config(settings)
    saver = AsyncRedisSaver(
        redis_client=client,
        ttl=None if ttl is None else dict(ttl),
        checkpoint_prefix=f"{prefix}checkpoint",
        checkpoint_write_prefix=f"{prefix}checkpoint_write",
    )
    saver.serde = CachedConstructorSerializer()
    try:
        await _set_up(saver)  # what `async with saver` does, the index race tolerated
        await saver.aset_client_info()
        yield saver
    finally:
        await client.aclose()


async def _set_up(saver: AsyncRedisSaver, attempts: int = 3) -> None:
    """Create the indexes, tolerating workers that start together on a fresh Redis: each checks that an index
    is missing, then creates it, so the losers of that race get "Index already exists"; the next try finds
    it."""
    for attempt in range(attempts):
        try:
            await saver.asetup()
            return
        except RedisSearchError as exc:
            if "already exists" not in str(exc) or attempt == attempts - 1:
                raise


# Pending writes on these channels mark a checkpoint that is never pruned: the approval's interrupt (the
# proposal the trader saw) and the decision written when it was resumed (what recovery completes).
PROTECTED_CHANNELS = ("__interrupt__", "decision")
MAX_DOCS = 10_000  # per thread and query, as the saver's own aprune


async def prune_thread(
    saver: AsyncRedisSaver, thread_id: str, keep_last: int, keep_protected: int | None = None
) -> int:
    """Delete the thread's checkpoints older than its `keep_last` newest (per namespace), except those with
    an interrupt or a decision among their writes that are among the namespace's newest `keep_protected`
    such checkpoints (default: `keep_last`, at least 2); returns how many were deleted (0 = keep_last 0: all
    kept). A waiting approval's interrupt is the newest of them (each turn that waits on it interrupts again,
    its decision comes after it), so it always stays; older ones only accumulated with the session's length.

    The saver's own `aprune(keep_last=…)` cannot spare a checkpoint, so this is that method with an exception
    list: the same index queries and the same keys (the checkpoint document, its write documents, its
    key-registry sorted set, the latest pointer of a namespace left empty), built by the saver's own key
    functions. tests/test_checkpoint_pruning.py pins it to `aprune` on the key layout."""
    if keep_last <= 0:
        return 0
    spare = max(keep_last if keep_protected is None else keep_protected, 2)
    safe_thread = to_storage_safe_id(thread_id)
    checkpoints = await saver.checkpoints_index.search(
        FilterQuery(
            filter_expression=Tag("thread_id") == safe_thread,
            return_fields=["checkpoint_ns", "checkpoint_id"],
            num_results=MAX_DOCS,
        )
    )
    if len(checkpoints.docs) <= keep_last:
        return 0
    writes = await saver.checkpoint_writes_index.search(
        FilterQuery(
            filter_expression=Tag("thread_id") == safe_thread,
            return_fields=["checkpoint_ns", "checkpoint_id", "task_id", "idx", "channel"],
            num_results=MAX_DOCS,
        )
    )
    writes_of: dict[tuple[str, str], list[Any]] = defaultdict(list)
    protected: set[tuple[str, str]] = set()
    for doc in writes.docs:
        of = (getattr(doc, "checkpoint_ns", ""), getattr(doc, "checkpoint_id", ""))
        writes_of[of].append(doc)
        if getattr(doc, "channel", "") in PROTECTED_CHANNELS:
            protected.add(of)
    by_ns: dict[str, list[str]] = defaultdict(list)
    for doc in checkpoints.docs:
        by_ns[getattr(doc, "checkpoint_ns", "")].append(getattr(doc, "checkpoint_id", ""))
    doomed: list[str] = []
    evicted = 0
    for ns, ids in by_ns.items():
        newest_first = sorted(ids, reverse=True)  # ids are time-ordered (uuid6)
        spared = {c for c in newest_first if (ns, c) in protected}
        spared = set(sorted(spared, reverse=True)[:spare])
        for checkpoint_id in newest_first[keep_last:]:
            if checkpoint_id in spared:
                continue
            evicted += 1
            doomed.append(saver._make_redis_checkpoint_key(safe_thread, ns, checkpoint_id))
            for w in writes_of[(ns, checkpoint_id)]:
                doomed.append(
                    saver._make_redis_checkpoint_writes_key(
                        safe_thread,
                        getattr(w, "checkpoint_ns", ""),
                        getattr(w, "checkpoint_id", ""),
                        getattr(w, "task_id", ""),
                        int(getattr(w, "idx", 0)),
                    )
                )
            doomed.append(CheckpointKeyRegistry.make_write_keys_zset_key(thread_id, ns, checkpoint_id))
        # keep_last >= 1: a namespace always keeps its newest checkpoint, so its latest pointer stays.
    if doomed:
        if saver.cluster_mode:
            for key in doomed:
                await saver._redis.delete(key)
        else:
            async with saver._redis.pipeline(transaction=False) as pipe:
                for key in doomed:
                    pipe.delete(key)
                await pipe.execute()
    return evicted
