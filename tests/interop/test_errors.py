"""Errors: the status codes and the SDK's typed exceptions, with `{"detail": ...}` bodies."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from support import assert_api_error, collect, human


async def test_unknown_thread_is_not_found(client):
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as raised:
        await client.threads.get(unknown)
    assert_api_error(raised.value, NotFoundError, 404)
    with pytest.raises(NotFoundError) as raised:
        await client.threads.delete(unknown)
    assert_api_error(raised.value, NotFoundError, 404)
    with pytest.raises(NotFoundError) as raised:
        await client.runs.create(unknown, "echo", input=human("x"))
    assert_api_error(raised.value, NotFoundError, 404)
    with pytest.raises(NotFoundError) as raised:
        await collect(client.runs.stream(unknown, "echo", input=human("x")))
    assert_api_error(raised.value, NotFoundError, 404)


async def test_unknown_run_is_not_found(client):
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.raises(NotFoundError) as raised:
        await client.runs.get(thread_id, str(uuid.uuid4()))
    assert_api_error(raised.value, NotFoundError, 404)


async def test_non_uuid_ids_are_unprocessable(client):
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.threads.get("not-a-uuid")
    assert_api_error(raised.value, UnprocessableEntityError, 422)
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.threads.create(thread_id="not-a-uuid")
    assert_api_error(raised.value, UnprocessableEntityError, 422)
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.runs.get(thread_id, "not-a-uuid")
    assert_api_error(raised.value, UnprocessableEntityError, 422)


async def test_duplicate_thread_is_a_conflict(client):
    thread_id = str(uuid.uuid4())
    await client.threads.create(thread_id=thread_id)
    with pytest.raises(ConflictError) as raised:
        await client.threads.create(thread_id=thread_id, if_exists="raise")
    assert_api_error(raised.value, ConflictError, 409)
    assert isinstance(raised.value, httpx.HTTPStatusError)


async def test_invalid_stream_mode_is_unprocessable(client):
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as raised:
        await collect(client.runs.stream(thread_id, "echo", input=human("x"), stream_mode="bogus"))
    assert_api_error(raised.value, UnprocessableEntityError, 422)
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.runs.create(thread_id, "echo", input=human("x"), stream_mode=["values", "bogus"])
    assert_api_error(raised.value, UnprocessableEntityError, 422)
    assert await client.runs.list(thread_id) == []


async def test_unknown_assistant_is_unprocessable(client):
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.runs.create(thread_id, "no-such-graph", input=human("x"))
    assert_api_error(raised.value, UnprocessableEntityError, 422)


async def test_invalid_multitask_strategy_is_unprocessable(client):
    thread_id = (await client.threads.create())["thread_id"]
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.runs.create(thread_id, "echo", input=human("x"), multitask_strategy="bogus")
    assert_api_error(raised.value, UnprocessableEntityError, 422)
