"""Multitask strategies: a second run on a thread whose first run (`sleep=5`) is running."""

from __future__ import annotations

import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError

from support import BUSY_S, assert_api_error, busy_thread, contents, human

FIRST = f"sleep={BUSY_S}"


async def test_reject(client):
    thread_id, first = await busy_thread(client)
    with pytest.raises(ConflictError) as raised:
        await client.runs.create(thread_id, "echo", input=human("second"), multitask_strategy="reject")
    assert_api_error(raised.value, ConflictError, 409)
    # Nothing was inserted, and the first run goes on to the end.
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [first["run_id"]]
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "running"
    values = await client.runs.join(thread_id, first["run_id"])
    assert contents(values) == [FIRST, f"echo: {FIRST}"]
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "success"


async def test_enqueue(client):
    thread_id, first = await busy_thread(client)
    second = await client.runs.create(thread_id, "echo", input=human("second"), multitask_strategy="enqueue")
    assert second["status"] == "pending"
    assert second["multitask_strategy"] == "enqueue"
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "running"
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "pending"
    values = await client.runs.join(thread_id, second["run_id"])
    assert contents(values) == [FIRST, f"echo: {FIRST}", "second", "echo: second"]
    statuses = {r["run_id"]: r["status"] for r in await client.runs.list(thread_id)}
    assert statuses == {first["run_id"]: "success", second["run_id"]: "success"}
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt(client):
    thread_id, first = await busy_thread(client)
    second = await client.runs.create(thread_id, "echo", input=human("second"), multitask_strategy="interrupt")
    assert second["status"] in ("pending", "running")
    values = await client.runs.join(thread_id, second["run_id"])
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "success"
    # The interrupted run's input stays in the thread; only the second run echoed.
    assert contents(values) == [FIRST, "second", "echo: second"]
    assert contents((await client.threads.get_state(thread_id))["values"]) == contents(values)


async def test_rollback(client):
    thread_id, first = await busy_thread(client)
    second = await client.runs.create(thread_id, "echo", input=human("second"), multitask_strategy="rollback")
    assert second["status"] in ("pending", "running")
    values = await client.runs.join(thread_id, second["run_id"])
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "success"
    # The first run is gone, and so is everything it wrote.
    with pytest.raises(NotFoundError) as raised:
        await client.runs.get(thread_id, first["run_id"])
    assert_api_error(raised.value, NotFoundError, 404)
    assert [r["run_id"] for r in await client.runs.list(thread_id)] == [second["run_id"]]
    assert contents(values) == ["second", "echo: second"]
    assert contents((await client.threads.get_state(thread_id))["values"]) == ["second", "echo: second"]
