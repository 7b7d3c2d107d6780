"""Reconnect: a resumable stream is rejoined with Last-Event-ID and replays only what came after."""

from __future__ import annotations

from support import collect, contents, human, wait_for_status


async def test_join_stream_from_a_last_event_id(client):
    thread_id = (await client.threads.create())["thread_id"]
    stream = client.runs.stream(
        thread_id,
        "echo",
        input=human("sleep=1.5"),
        stream_mode=["values", "updates"],
        stream_resumable=True,
    )
    first = []
    async for part in stream:
        first.append(part)
        if len(first) == 2:
            break
    await stream.aclose()
    assert [p.event for p in first] == ["metadata", "values"]
    assert all(p.id for p in first), "a resumable stream sends an id with every event"
    run_id = first[0].data["run_id"]
    assert contents(first[1].data) == ["sleep=1.5"]
    # Dropping the connection does not cancel the run (on_disconnect defaults to continue).
    assert (await client.runs.get(thread_id, run_id))["status"] == "running"

    # From the metadata event: everything after it, the first values included.
    replay = await collect(client.runs.join_stream(thread_id, run_id, last_event_id=first[0].id))
    assert [p.event for p in replay] == ["values", "updates", "values"]
    assert replay[0].id == first[1].id
    assert contents(replay[-1].data) == ["sleep=1.5", "echo: sleep=1.5"]

    # From the first values event: only the node's update and the final values.
    rest = await collect(client.runs.join_stream(thread_id, run_id, last_event_id=first[1].id))
    assert [p.event for p in rest] == ["updates", "values"]
    assert [p.id for p in rest] == [p.id for p in replay[1:]]
    assert contents(rest[-1].data) == ["sleep=1.5", "echo: sleep=1.5"]
    await wait_for_status(client, thread_id, run_id, ("success",))
