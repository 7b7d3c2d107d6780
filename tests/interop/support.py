"""Helpers shared by the interop tests: inputs, message views, bounded polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from langgraph_sdk.errors import APIStatusError

#: The assistant every LangGraph server creates for the graph `echo`.
ECHO_ASSISTANT_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "echo"))
TERMINAL = ("success", "error", "timeout", "interrupted")
#: How long the "busy" first run of a thread sleeps (multitask and cancel tests).
BUSY_S = 5
#: Deadline of a polling loop.
POLL_TIMEOUT_S = 15.0


def human(text: str) -> dict[str, Any]:
    """A run input with one user message, as a client sends it (role form)."""
    return {"messages": [{"role": "user", "content": text}]}


def messages(values: dict[str, Any] | None) -> list[tuple[str, str]]:
    """`(type, content)` of each message of a state's values."""
    return [(m["type"], m["content"]) for m in (values or {}).get("messages", [])]


def contents(values: dict[str, Any] | None) -> list[str]:
    """The content of each message of a state's values."""
    return [content for _, content in messages(values)]


def tag() -> str:
    """A fresh value to find this test's threads by metadata."""
    return uuid.uuid4().hex


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


async def wait_for_status(
    client, thread_id: str, run_id: str, statuses: tuple[str, ...], timeout: float = POLL_TIMEOUT_S
) -> dict[str, Any]:
    """Poll `runs.get` until the run's status is one of `statuses`; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    run = await client.runs.get(thread_id, run_id)
    while run["status"] not in statuses:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['status']!r} after {timeout} s, wanted {statuses}")
        await asyncio.sleep(0.05)
        run = await client.runs.get(thread_id, run_id)
    return run


async def busy_thread(client, seconds: float = BUSY_S, **thread_kwargs) -> tuple[str, dict[str, Any]]:
    """A new thread whose first run sleeps `seconds` and is `running` when this returns."""
    thread = await client.threads.create(**thread_kwargs)
    run = await client.runs.create(thread["thread_id"], "echo", input=human(f"sleep={seconds}"))
    run = await wait_for_status(client, thread["thread_id"], run["run_id"], ("running",))
    return thread["thread_id"], run


async def collect(parts, limit: int = 1000) -> list:
    """Every StreamPart of an SDK stream, in order (bounded in count)."""
    out = []
    async for part in parts:
        out.append(part)
        assert len(out) <= limit, "stream did not end"
    return out


def assert_api_error(error: BaseException, cls: type[APIStatusError], status: int) -> None:
    """The SDK raised `cls` for `status`, and the body is `{"detail": "<non-empty string>"}`."""
    assert type(error) is cls, f"expected {cls.__name__}, got {type(error).__name__}: {error}"
    assert error.status_code == status
    assert error.response.status_code == status
    assert isinstance(error.body, dict), error.body
    assert isinstance(error.body.get("detail"), str) and error.body["detail"], error.body
