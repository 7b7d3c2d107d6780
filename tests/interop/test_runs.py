"""Runs: create, get, list, join, wait, stream (each mode), join_stream, errors, delete, stateless."""

from __future__ import annotations

import pytest
from langgraph_sdk.errors import NotFoundError

from support import (
    ECHO_ASSISTANT_ID,
    TERMINAL,
    assert_api_error,
    collect,
    contents,
    human,
    is_uuid,
    messages,
    wait_for_status,
)


async def new_thread(client) -> str:
    return (await client.threads.create())["thread_id"]


async def test_create_answers_at_once_with_a_pending_run(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("hi"))
    assert run["status"] in ("pending", "running")
    assert is_uuid(run["run_id"])
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == ECHO_ASSISTANT_ID
    assert run["multitask_strategy"] == "enqueue"
    for key in ("created_at", "updated_at", "metadata", "kwargs"):
        assert key in run
    done = await wait_for_status(client, thread_id, run["run_id"], TERMINAL)
    assert done["status"] == "success"


async def test_get_and_list(client):
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "echo", input=human("one"))
    await client.runs.join(thread_id, first["run_id"])
    second = await client.runs.create(thread_id, "echo", input=human("two"))
    await client.runs.join(thread_id, second["run_id"])
    got = await client.runs.get(thread_id, first["run_id"])
    assert got["run_id"] == first["run_id"]
    assert got["thread_id"] == thread_id
    assert got["status"] == "success"
    listed = await client.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]  # newest first
    assert [r["status"] for r in listed] == ["success", "success"]
    assert [r["run_id"] for r in await client.runs.list(thread_id, limit=1)] == [second["run_id"]]
    only = await client.runs.list(thread_id, status="success", limit=10)
    assert len(only) == 2


async def test_join_returns_the_final_values(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("hi"))
    values = await client.runs.join(thread_id, run["run_id"])
    assert messages(values) == [("human", "hi"), ("ai", "echo: hi")]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_wait_returns_the_final_values(client):
    thread_id = await new_thread(client)
    values = await client.runs.wait(thread_id, "echo", input=human("hi"))
    assert messages(values) == [("human", "hi"), ("ai", "echo: hi")]
    assert all(m["id"] for m in values["messages"])
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success"]


async def test_wait_accepts_the_assistant_uuid(client):
    thread_id = await new_thread(client)
    values = await client.runs.wait(thread_id, ECHO_ASSISTANT_ID, input=human("by id"))
    assert contents(values) == ["by id", "echo: by id"]


async def test_runs_keep_the_thread_history(client):
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input=human("one"))
    values = await client.runs.wait(thread_id, "echo", input=human("two"))
    assert contents(values) == ["one", "echo: one", "two", "echo: two"]


async def test_stream_values(client):
    thread_id = await new_thread(client)
    parts = await collect(client.runs.stream(thread_id, "echo", input=human("hi"), stream_mode="values"))
    events = [p.event for p in parts]
    assert events[0] == "metadata"
    assert is_uuid(parts[0].data["run_id"])
    assert set(events[1:]) == {"values"} and len(events) >= 3
    assert messages(parts[1].data) == [("human", "hi")]
    assert messages(parts[-1].data) == [("human", "hi"), ("ai", "echo: hi")]
    run = await client.runs.get(thread_id, parts[0].data["run_id"])
    assert run["status"] == "success"


async def test_stream_updates(client):
    thread_id = await new_thread(client)
    parts = await collect(client.runs.stream(thread_id, "echo", input=human("hi"), stream_mode="updates"))
    assert [p.event for p in parts] == ["metadata", "updates"]
    update = parts[1].data
    assert list(update) == ["echo"]
    assert messages(update["echo"]) == [("ai", "echo: hi")]


async def test_stream_messages_tuple(client):
    thread_id = await new_thread(client)
    parts = await collect(
        client.runs.stream(thread_id, "echo", input=human("hi"), stream_mode="messages-tuple")
    )
    assert parts[0].event == "metadata"
    tuples = [p.data for p in parts[1:]]
    assert [p.event for p in parts[1:]] == ["messages"] * len(tuples) and tuples
    text = ""
    for message, meta in tuples:
        assert message["type"] in ("ai", "AIMessageChunk")
        assert meta["langgraph_node"] == "echo"
        text += message["content"]
    assert text == "echo: hi"


async def test_stream_several_modes(client):
    thread_id = await new_thread(client)
    parts = await collect(
        client.runs.stream(
            thread_id, "echo", input=human("hi"), stream_mode=["values", "updates", "messages-tuple"]
        )
    )
    events = [p.event for p in parts]
    assert events[0] == "metadata"
    assert set(events[1:]) == {"values", "updates", "messages"}
    assert events[-1] == "values"
    assert messages(parts[-1].data) == [("human", "hi"), ("ai", "echo: hi")]
    update = next(p.data for p in parts if p.event == "updates")
    assert messages(update["echo"]) == [("ai", "echo: hi")]


async def test_stateless_wait(client):
    values = await client.runs.wait(None, "echo", input=human("stateless"))
    assert messages(values) == [("human", "stateless"), ("ai", "echo: stateless")]


async def test_stateless_stream(client):
    parts = await collect(client.runs.stream(None, "echo", input=human("stateless")))
    assert parts[0].event == "metadata"
    assert parts[-1].event == "values"
    assert contents(parts[-1].data) == ["stateless", "echo: stateless"]


async def test_join_stream_of_a_running_run(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("sleep=1.5"), stream_mode=["values", "updates"])
    await wait_for_status(client, thread_id, run["run_id"], ("running",))
    parts = await collect(client.runs.join_stream(thread_id, run["run_id"]))
    events = [p.event for p in parts]
    # Only what the run produces after the join: the node's update and the final values.
    assert "updates" in events and events[-1] == "values"
    assert contents(parts[-1].data) == ["sleep=1.5", "echo: sleep=1.5"]
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


async def test_failing_run_ends_error(client):
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input=human("fail=boom"))
    result = await client.runs.join(thread_id, run["run_id"])
    assert result == {"__error__": {"error": "EchoError", "message": "boom"}}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "error"
    assert (await client.threads.get(thread_id))["status"] == "error"


async def test_failing_wait(client):
    thread_id = await new_thread(client)
    result = await client.runs.wait(thread_id, "echo", input=human("fail=bad input"), raise_error=False)
    assert result == {"__error__": {"error": "EchoError", "message": "bad input"}}
    with pytest.raises(Exception) as raised:
        await client.runs.wait(thread_id, "echo", input=human("fail=again"))
    assert str(raised.value) == "EchoError: again"
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["error", "error"]


async def test_failing_stream_ends_with_an_error_event(client):
    thread_id = await new_thread(client)
    parts = await collect(
        client.runs.stream(thread_id, "echo", input=human("fail=broken"), stream_mode=["values", "updates"])
    )
    assert parts[0].event == "metadata"
    assert "updates" not in [p.event for p in parts]
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "EchoError", "message": "broken"}
    assert [p.event for p in parts].count("error") == 1


async def test_delete_a_finished_run(client):
    thread_id = await new_thread(client)
    keep = await client.runs.create(thread_id, "echo", input=human("keep"))
    await client.runs.join(thread_id, keep["run_id"])
    gone = await client.runs.create(thread_id, "echo", input=human("gone"))
    await client.runs.join(thread_id, gone["run_id"])
    assert await client.runs.delete(thread_id, gone["run_id"]) is None
    with pytest.raises(NotFoundError) as raised:
        await client.runs.get(thread_id, gone["run_id"])
    assert_api_error(raised.value, NotFoundError, 404)
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [keep["run_id"]]
