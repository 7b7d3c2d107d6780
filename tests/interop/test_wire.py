"""Raw wire details the SDK relies on but does not expose: headers and SSE framing."""

from __future__ import annotations

import json

from support import human


async def test_stream_response_headers_and_framing(client, raw):
    thread_id = (await client.threads.create())["thread_id"]
    body = {"assistant_id": "echo", "input": human("raw"), "stream_mode": ["values"]}
    async with raw.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # The SDK reconnects to Location; it must be a same-origin path of this run.
        location = response.headers["location"]
        text = (await response.aread()).decode()
    frames = [f for f in text.replace("\r\n", "\n").split("\n\n") if f.strip()]
    fields = [dict(line.split(": ", 1) for line in f.split("\n") if not line.startswith(":")) for f in frames]
    fields = [f for f in fields if f]
    assert fields[0]["event"] == "metadata"
    run_id = json.loads(fields[0]["data"])["run_id"]
    assert location == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert [f["event"] for f in fields[1:]] == ["values"] * (len(fields) - 1)
    assert [json.loads(f["data"])["messages"][-1]["content"] for f in fields[1:]][-1] == "echo: raw"


async def test_wait_response_location(client, raw):
    thread_id = (await client.threads.create())["thread_id"]
    response = await raw.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo", "input": human("w")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    run_id = (await client.runs.list(thread_id))[0]["run_id"]
    assert response.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/join"
    assert [m["content"] for m in response.json()["messages"]] == ["w", "echo: w"]
