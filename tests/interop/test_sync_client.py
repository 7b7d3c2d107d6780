"""The official sync client (`get_sync_client`) against the same server."""

from __future__ import annotations

import pytest
from langgraph_sdk.errors import NotFoundError

from support import ECHO_ASSISTANT_ID, contents, human


def test_sync_round_trip(sync_client):
    thread = sync_client.threads.create(metadata={"client": "sync"})
    thread_id = thread["thread_id"]
    values = sync_client.runs.wait(thread_id, "echo", input=human("sync"))
    assert contents(values) == ["sync", "echo: sync"]
    parts = list(sync_client.runs.stream(thread_id, "echo", input=human("again"), stream_mode="updates"))
    assert [p.event for p in parts] == ["metadata", "updates"]
    state = sync_client.threads.get_state(thread_id)
    assert contents(state["values"]) == ["sync", "echo: sync", "again", "echo: again"]
    assert sync_client.assistants.get(ECHO_ASSISTANT_ID)["graph_id"] == "echo"
    sync_client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(thread_id)
