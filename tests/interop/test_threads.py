"""Threads: create, get, update, delete, search, state, history, update_state."""

from __future__ import annotations

import uuid

import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError

from support import assert_api_error, busy_thread, contents, human, is_uuid, messages, tag


async def test_create_with_metadata(client):
    label = tag()
    thread = await client.threads.create(metadata={"suite": label, "n": 1})
    assert is_uuid(thread["thread_id"])
    assert thread["metadata"] == {"suite": label, "n": 1}
    assert thread["status"] == "idle"
    assert thread["values"] is None
    for key in ("created_at", "updated_at"):
        assert isinstance(thread[key], str) and thread[key]


async def test_create_with_given_id(client):
    thread_id = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=thread_id)
    assert thread["thread_id"] == thread_id
    assert (await client.threads.get(thread_id))["thread_id"] == thread_id


async def test_create_if_exists_do_nothing_returns_the_existing_thread(client):
    thread_id = str(uuid.uuid4())
    first = await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    again = await client.threads.create(thread_id=thread_id, metadata={"v": 2}, if_exists="do_nothing")
    assert again["thread_id"] == thread_id
    assert again["metadata"] == {"v": 1}
    assert again["created_at"] == first["created_at"]


async def test_create_duplicate_id_is_a_conflict(client):
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id)
    with pytest.raises(ConflictError) as raised:
        await client.threads.create(thread_id=thread_id)
    assert_api_error(raised.value, ConflictError, 409)


async def test_get(client):
    label = tag()
    created = await client.threads.create(metadata={"suite": label})
    thread = await client.threads.get(created["thread_id"])
    assert thread["thread_id"] == created["thread_id"]
    assert thread["metadata"] == {"suite": label}
    assert thread["status"] == "idle"
    assert thread["created_at"] == created["created_at"]


async def test_update_metadata_merges(client):
    created = await client.threads.create(metadata={"a": 1})
    updated = await client.threads.update(created["thread_id"], metadata={"b": 2})
    assert updated["thread_id"] == created["thread_id"]
    assert updated["metadata"] == {"a": 1, "b": 2}
    assert (await client.threads.get(created["thread_id"]))["metadata"] == {"a": 1, "b": 2}


async def test_delete_then_get_is_not_found(client):
    thread_id = (await client.threads.create())["thread_id"]
    assert await client.threads.delete(thread_id) is None
    with pytest.raises(NotFoundError) as raised:
        await client.threads.get(thread_id)
    assert_api_error(raised.value, NotFoundError, 404)


async def test_search_by_metadata(client):
    label = tag()
    one = (await client.threads.create(metadata={"suite": label, "n": 1}))["thread_id"]
    two = (await client.threads.create(metadata={"suite": label, "n": 2}))["thread_id"]
    await client.threads.create(metadata={"suite": tag()})
    found = await client.threads.search(metadata={"suite": label})
    assert sorted(t["thread_id"] for t in found) == sorted([one, two])
    found = await client.threads.search(metadata={"suite": label, "n": 2})
    assert [t["thread_id"] for t in found] == [two]


async def test_search_by_status(client):
    label = tag()
    idle = (await client.threads.create(metadata={"suite": label}))["thread_id"]
    busy, run = await busy_thread(client, metadata={"suite": label})
    try:
        found = await client.threads.search(metadata={"suite": label}, status="busy")
        assert [t["thread_id"] for t in found] == [busy]
        assert found[0]["status"] == "busy"
        found = await client.threads.search(metadata={"suite": label}, status="idle")
        assert [t["thread_id"] for t in found] == [idle]
    finally:
        await client.runs.cancel(busy, run["run_id"])


async def test_get_state_of_an_empty_thread(client):
    thread_id = (await client.threads.create())["thread_id"]
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {}
    assert state["next"] == []
    assert state["tasks"] == []
    assert state["checkpoint"] is None


async def test_get_state_after_a_run(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "echo", input=human("hello"))
    state = await client.threads.get_state(thread_id)
    assert messages(state["values"]) == [("human", "hello"), ("ai", "echo: hello")]
    ids = [m["id"] for m in state["values"]["messages"]]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2
    assert state["next"] == []
    assert state["checkpoint"]["thread_id"] == thread_id
    assert isinstance(state["checkpoint"]["checkpoint_id"], str) and state["checkpoint"]["checkpoint_id"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == state["values"]


async def test_get_history_is_newest_first(client):
    thread_id = (await client.threads.create())["thread_id"]
    assert await client.threads.get_history(thread_id) == []
    await client.runs.wait(thread_id, "echo", input=human("one"))
    state = await client.threads.get_state(thread_id)
    history = await client.threads.get_history(thread_id)
    assert len(history) >= 2
    assert history[0]["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
    assert contents(history[0]["values"]) == ["one", "echo: one"]
    sizes = [len(h["values"].get("messages", [])) for h in history]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < 2
    assert len(await client.threads.get_history(thread_id, limit=1)) == 1


async def test_update_state_appends_a_message(client):
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "echo", input=human("one"))
    update = await client.threads.update_state(
        thread_id, {"messages": [{"role": "user", "content": "patched"}]}
    )
    checkpoint_id = update["checkpoint"]["checkpoint_id"]
    assert update["checkpoint"]["thread_id"] == thread_id
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint"]["checkpoint_id"] == checkpoint_id
    assert messages(state["values"]) == [("human", "one"), ("ai", "echo: one"), ("human", "patched")]
    # The next run sees the patched history.
    values = await client.runs.wait(thread_id, "echo", input=human("two"))
    assert contents(values) == ["one", "echo: one", "patched", "two", "echo: two"]
