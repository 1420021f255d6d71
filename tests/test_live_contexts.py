"""The turns' live contexts stored once outside the checkpoints (graph.live_contexts), on the real Redis: the
checkpoints keep a reference, the prompts stay byte-identical, an older checkpoint still renders its prompt,
and a missing text or an unavailable Redis does not fail a turn."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import redis
import redis.asyncio as aioredis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from graph.live_contexts import LIVE_CONTEXT_REF, hydrate, order_key, store, texts_key
from graph.model.fake import ScriptedChatModel, tool_call
from graph.threads import thread_id
from prompts.system import SYSTEM_PROMPT
from prompts.window import CHANGED_ONLY, LIVE_CONTEXT, as_sent, model_window
from server.in_thread import free_port
from tests.support.graph import SESSION, USER, CopilotFactory

TID = thread_id(USER, SESSION)
MARK = "## Contexto actual / Current context"


def round_trip(messages: list[BaseMessage]) -> Any:
    """A get_portfolio round, then an answer."""
    if isinstance(messages[-1], ToolMessage):
        return "Flat account, risk unused."
    return tool_call("get_portfolio", {}, f"call_{uuid.uuid4().hex[:8]}")


def model_of(copilot: Any) -> ScriptedChatModel:
    model = copilot.chat_model
    assert isinstance(model, ScriptedChatModel)
    return model


async def stored_messages(copilot: Any, config: Any = None) -> list[Any]:
    snapshot = await copilot.graph.aget_state(config or copilot._config(USER, SESSION))
    return list(snapshot.values.get("messages", []))


async def chat_turns(copilot: Any, clock: Any, n: int) -> None:
    for turn in range(n):
        clock.set(clock.now() + timedelta(minutes=5))  # each turn's live context differs
        await copilot.chat(USER, SESSION, f"turn {turn}: how is my account?")


async def test_each_context_is_stored_once_and_the_prompts_stay_byte_identical(
    make_copilot: CopilotFactory, clock: Any, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    async with make_copilot([round_trip]) as copilot:
        await chat_turns(copilot, clock, 3)
        calls = model_of(copilot).calls
        assert len(calls) == 6
        # Each turn's first request extends the previous turn's last one byte for byte.
        for last, first in ((calls[1], calls[2]), (calls[3], calls[4])):
            assert first[: len(last)] == last
        humans = [m for m in await stored_messages(copilot) if isinstance(m, HumanMessage)]
        assert len(humans) == 3
        # Nor the snapshots it is made of: reason fetched them for the context the model got.
        values = (await copilot.graph.aget_state(copilot._config(USER, SESSION))).values
        assert values.get("market") is None and values.get("portfolio") is None
        assert "current_price: " in str(calls[0][-2].content) and "## Portfolio" in str(calls[0][-2].content)
        assert all(LIVE_CONTEXT not in m.additional_kwargs for m in humans)  # not in the checkpoint
        texts = await redis_client.hgetall(texts_key(key_prefix, TID))
        assert sorted(texts) == sorted(str(m.additional_kwargs[LIVE_CONTEXT_REF]) for m in humans)
        # The text stored is the one sent: whole for the first turn, the changes of later ones from it.
        first_sent = calls[0][-2].content
        assert first_sent == texts[str(humans[0].id)] and str(first_sent).startswith(MARK)
        assert CHANGED_ONLY in str(calls[2][-2].content) and MARK in texts[str(humans[1].id)]
        ttl = copilot.settings.redis.ttl
        for key in (texts_key(key_prefix, TID), order_key(key_prefix, TID)):
            assert 0 < await redis_client.ttl(key) <= ttl
        assert await copilot.delete(USER, SESSION)
        assert not await redis_client.exists(texts_key(key_prefix, TID), order_key(key_prefix, TID))


async def test_an_older_checkpoint_in_the_kept_window_renders_the_prompt_it_was_sent(
    make_copilot: CopilotFactory, clock: Any, redis_client: aioredis.Redis
) -> None:
    """Time travel: each kept checkpoint, its texts put back, renders exactly its turn's last request (the
    window pinned on the turn; no live context needed again)."""
    async with make_copilot([round_trip], checkpoints={"keep_last": 4, "prune_every": 1}) as copilot:
        await chat_turns(copilot, clock, 8)
        calls = model_of(copilot).calls
        history = [s async for s in copilot.graph.aget_state_history(copilot._config(USER, SESSION))]
        turns = [
            s for s in history if s.values.get("messages") and isinstance(s.values["messages"][-1], AIMessage)
        ]
        assert len(turns) == 4  # pruned to keep_last

        def no_new_context() -> str:
            raise AssertionError("a stored turn needs no new live context")

        for snap, last_call in zip(turns, reversed(calls[1::2]), strict=False):
            messages = await hydrate(
                redis_client, copilot.settings.redis.prefix, TID, snap.values["messages"]
            )
            asked = messages[:-1]  # the request came before the answer
            window, pinned = model_window(asked, copilot.settings.context.max_history, 10**6, no_new_context)
            assert pinned is None
            assert [SystemMessage(SYSTEM_PROMPT), *as_sent(window)] == last_call


async def test_a_missing_text_does_not_fail_a_turn(
    make_copilot: CopilotFactory, clock: Any, redis_client: aioredis.Redis, key_prefix: str, redis_url: str
) -> None:
    """An older turn whose text is gone is sent as the trader's words alone, the next context whole; the
    current turn's text lost between its two model calls is pinned again, fresh."""
    sync = redis.Redis.from_url(redis_url)

    def losing(messages: list[BaseMessage]) -> Any:
        if not isinstance(messages[-1], ToolMessage):
            sync.delete(texts_key(key_prefix, TID))  # gone before the turn's second model call
        return round_trip(messages)

    async with make_copilot([losing]) as copilot:
        await chat_turns(copilot, clock, 2)
        # Each turn's first call lost the hash; the second call of turn 1 has neither text any more.
        sent = model_of(copilot).calls[3]
        question = next(i for i, m in enumerate(sent) if m.content == "turn 0: how is my account?")
        assert isinstance(sent[question - 1], SystemMessage)  # turn 0: the trader's words alone
        again = sent[-4]  # turn 1 pinned again: its context, its words, the tool call, its result
        assert isinstance(again, HumanMessage) and str(again.content).startswith(MARK)
        assert CHANGED_ONLY not in str(again.content)  # whole: no context before it is shown
        assert sent[-3].content == "turn 1: how is my account?"
        humans = [m for m in await stored_messages(copilot) if isinstance(m, HumanMessage)]
        texts = await redis_client.hgetall(texts_key(key_prefix, TID))
        assert list(texts) == [str(humans[-1].id)]  # pinned again under the same reference
    sync.close()


async def test_the_texts_are_trimmed_to_the_newest_and_kept_inline_when_redis_fails(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    pinned = [
        HumanMessage(f"q{i}", id=f"h{i}", additional_kwargs={LIVE_CONTEXT: f"{MARK}\nctx {i}"})
        for i in range(5)
    ]
    stored = [await store(redis_client, key_prefix, "t", m, ttl_s=60, keep=3) for m in pinned]
    assert all(m.additional_kwargs == {LIVE_CONTEXT_REF: m.id} for m in stored)
    assert sorted(await redis_client.hkeys(texts_key(key_prefix, "t"))) == ["h2", "h3", "h4"]
    assert await redis_client.zcard(order_key(key_prefix, "t")) == 3
    back = await hydrate(redis_client, key_prefix, "t", [*stored, HumanMessage("q5", id="h5")])
    texts = [f"{MARK}\nctx {i}" for i in (2, 3, 4)]
    assert [m.additional_kwargs.get(LIVE_CONTEXT) for m in back] == ["", "", *texts, None]
    down = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert await store(down, key_prefix, "t", pinned[0], ttl_s=60, keep=3) is pinned[0]  # inline, as before
    newest = await hydrate(down, key_prefix, "t", stored[:2])
    assert newest[0].additional_kwargs == {LIVE_CONTEXT: ""} and newest[1].additional_kwargs == {}
    await down.aclose()


async def test_a_session_of_an_earlier_version_renders_its_inline_contexts_and_drops_its_snapshots(
    make_copilot: CopilotFactory, clock: Any
) -> None:
    """Checkpoints written before: the text inline on the message, the snapshots in the state."""
    old = HumanMessage("old question", additional_kwargs={LIVE_CONTEXT: f"{MARK}\nTime (UTC): earlier"})
    async with make_copilot([round_trip]) as copilot:
        config = copilot._config(USER, SESSION)
        earlier = {
            "messages": [old, AIMessage("old answer")],
            "market": {"symbol": "XAUUSD"},
            "portfolio": {},
        }
        await copilot.graph.aupdate_state(config, earlier, as_node="reason")
        await chat_turns(copilot, clock, 1)
        sent = model_of(copilot).calls[0]
        assert [m.content for m in sent[1:4]] == [
            f"{MARK}\nTime (UTC): earlier",
            "old question",
            "old answer",
        ]
        assert CHANGED_ONLY in str(sent[-2].content)  # the new turn's context: its changes since the old one
        values = (await copilot.graph.aget_state(config)).values
        assert (
            values.get("market") is None and values["messages"][0].additional_kwargs == old.additional_kwargs
        )
