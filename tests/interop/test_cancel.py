"""Cancel: a cancelled run ends `interrupted`; a finished run cannot be cancelled."""

from __future__ import annotations

import time

import httpx
import pytest
from langgraph_sdk.errors import NotFoundError

from support import BUSY_S, assert_api_error, busy_thread, contents, human, wait_for_status


async def test_cancel_without_waiting(client):
    thread_id, run = await busy_thread(client)
    started = time.monotonic()
    assert await client.runs.cancel(thread_id, run["run_id"], wait=False) is None
    done = await wait_for_status(client, thread_id, run["run_id"], ("success", "error", "interrupted"))
    assert done["status"] == "interrupted"
    assert time.monotonic() - started < BUSY_S - 1, "the sleeping node was not stopped"
    # The node never finished: the thread holds the input but no echo.
    state = await client.threads.get_state(thread_id)
    assert contents(state["values"]) == [f"sleep={BUSY_S}"]


async def test_cancel_and_wait(client):
    thread_id, run = await busy_thread(client)
    started = time.monotonic()
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert time.monotonic() - started < BUSY_S - 1, "the sleeping node was not stopped"
    # When the waiting cancel returns, the run is already interrupted.
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"


async def test_cancel_answers_202_with_an_empty_body(client, raw):
    thread_id, run = await busy_thread(client)
    response = await raw.post(
        f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"wait": 0, "action": "interrupt"}
    )
    assert response.status_code == 202
    assert response.content == b""
    await wait_for_status(client, thread_id, run["run_id"], ("interrupted",))


async def test_cancel_a_pending_run(client):
    thread_id, first = await busy_thread(client)
    try:
        queued = await client.runs.create(thread_id, "echo", input=human("queued"), multitask_strategy="enqueue")
        assert queued["status"] == "pending"
        await client.runs.cancel(thread_id, queued["run_id"])
        assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "interrupted"
        assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "running"
    finally:
        await client.runs.cancel(thread_id, first["run_id"])
    await wait_for_status(client, thread_id, first["run_id"], ("interrupted",))


async def test_cancel_a_finished_run_is_not_found(client):
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "echo", input=human("done"))
    await client.runs.join(thread_id, run["run_id"])
    with pytest.raises(NotFoundError) as raised:
        await client.runs.cancel(thread_id, run["run_id"])
    assert_api_error(raised.value, NotFoundError, 404)
    # With wait=True the SDK reads the answer as a stream and raises plain httpx errors.
    with pytest.raises(httpx.HTTPStatusError) as raised_wait:
        await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert raised_wait.value.response.status_code == 404
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
