"""Assistants: the server hosts the graph `echo` as the assistant uuid5(NAMESPACE, "echo")."""

from __future__ import annotations

import uuid

import pytest
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from support import ECHO_ASSISTANT_ID, assert_api_error


def test_echo_assistant_id_is_the_uuid5_of_the_graph_name():
    assert ECHO_ASSISTANT_ID == "046b5dc7-2108-582c-9c6c-31d556d138f0"


async def test_search_finds_echo(client):
    found = await client.assistants.search(limit=100)
    echo = [a for a in found if a["graph_id"] == "echo"]
    assert [a["assistant_id"] for a in echo] == [ECHO_ASSISTANT_ID]
    assert echo[0]["name"] == "echo"
    by_graph = await client.assistants.search(graph_id="echo")
    assert [a["assistant_id"] for a in by_graph] == [ECHO_ASSISTANT_ID]


async def test_get_by_id(client):
    assistant = await client.assistants.get(ECHO_ASSISTANT_ID)
    assert assistant["assistant_id"] == ECHO_ASSISTANT_ID
    assert assistant["graph_id"] == "echo"
    assert assistant["name"] == "echo"
    assert isinstance(assistant["version"], int)
    for key in ("config", "metadata", "created_at", "updated_at"):
        assert key in assistant


async def test_get_unknown_is_not_found(client):
    with pytest.raises(NotFoundError) as raised:
        await client.assistants.get(str(uuid.uuid4()))
    assert_api_error(raised.value, NotFoundError, 404)


async def test_get_by_graph_name_is_unprocessable(client):
    # GET /assistants/{id} takes only UUIDs; graph names work in run bodies.
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.assistants.get("echo")
    assert_api_error(raised.value, UnprocessableEntityError, 422)
