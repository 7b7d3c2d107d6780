"""Deep Agents' own async subagent middleware (PyPI `deepagents`) drives the server under test.

A supervisor built with `langchain.agents.create_agent` and deepagents' `AsyncSubAgentMiddleware`
gets one remote subagent, `echoer` (graph `echo` at ERRAND_INTEROP_URL). Its model is scripted
(no LLM): each turn it calls one of the five tools the way a model would, reading task ids from
the tool results it got. The tools do the HTTP through the official client, so this checks that
an unmodified Deep Agents supervisor can start, check, update, cancel and list tasks.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Callable

import pytest
from deepagents.middleware.async_subagents import AsyncSubAgentMiddleware
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver

from support import wait_for_status

TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# What the scripted model does next: given the conversation, a tool call or a final answer.
Step = Callable[[list[BaseMessage]], AIMessage]


def call(tool: str, **args: Any) -> Step:
    def step(_: list[BaseMessage]) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": tool, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}"}])

    return step


def call_on_task(tool: str, which: int, **args: Any) -> Step:
    """Calls `tool` on the `which`-th task id the tools have reported (0: first, -1: latest)."""

    def step(messages: list[BaseMessage]) -> AIMessage:
        ids: list[str] = []
        for message in messages:
            if isinstance(message, ToolMessage):
                for found in TASK_ID.findall(str(message.content)):
                    if found not in ids:
                        ids.append(found)
        return call(tool, task_id=ids[which], **args)(messages)

    return step


def answer(text: str) -> Step:
    return lambda _: AIMessage(content=text)


NOTICE = "[SYSTEM NOTIFICATION"


class ScriptedModel(BaseChatModel):
    """A chat model that plays a fixed list of steps, one per model call.

    A call whose last message is one of the middleware's completion notices is answered with
    "Noted." without using a step, and the notice is kept, as a model would take it in.
    """

    steps: list[Any]
    notices: list[str] = []

    model_config = {"arbitrary_types_allowed": True}

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        is_notice = lambda m: isinstance(m, HumanMessage) and NOTICE in str(m.content)  # noqa: E731
        self.notices.extend(str(m.content) for m in messages if is_notice(m) and str(m.content) not in self.notices)
        before = [m for m in messages if not is_notice(m)]
        # A notice after the supervisor's answer reopens its turn: acknowledge it. A notice that
        # came with the user's message leaves the scripted step for that message to run.
        if messages and is_notice(messages[-1]) and isinstance(before[-1], AIMessage) and not before[-1].tool_calls:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content="Noted."))])
        if not self.steps:
            seen = [(type(m).__name__, str(m.content)[:120]) for m in messages]
            raise AssertionError(f"the supervisor called its model more often than scripted: {seen}")
        return ChatResult(generations=[ChatGeneration(message=self.steps.pop(0)(messages))])


def supervisor(url: str, steps: list[Step]):
    middleware = AsyncSubAgentMiddleware(
        async_subagents=[
            {"name": "echoer", "description": "Echoes what it is asked.", "graph_id": "echo", "url": url}
        ]
    )
    model = ScriptedModel(steps=steps)
    agent = create_agent(model=model, tools=[], middleware=[middleware], checkpointer=InMemorySaver())
    return agent, model


def tool_results(state: dict[str, Any], tool: str) -> list[str]:
    return [str(m.content) for m in state["messages"] if isinstance(m, ToolMessage) and m.name == tool]


async def test_a_deep_agents_supervisor_starts_checks_updates_cancels_and_lists(url, client):
    agent, model = supervisor(
        url,
        [
            # Turn 1: start a slow task and hand control back.
            call("start_async_task", description="sleep=2 look into it", subagent_type="echoer"),
            answer("Started."),
            # Turn 2: check it while it runs.
            call_on_task("check_async_task", 0),
            answer("Still going."),
            # Turn 3: steer it with a new instruction (update_strategy interrupt by default).
            call_on_task("update_async_task", 0, message="new direction"),
            answer("Updated."),
            # Turn 4 (after it finished): check the result.
            call_on_task("check_async_task", 0),
            answer("Done."),
            # Turn 5: start a second, long task, then cancel it.
            call("start_async_task", description="sleep=30 never mind", subagent_type="echoer"),
            call_on_task("cancel_async_task", -1),
            answer("Cancelled."),
            # Turn 6: list every task.
            call("list_async_tasks"),
            answer("Listed."),
        ],
    )
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}

    async def turn(text: str) -> dict[str, Any]:
        return await agent.ainvoke({"messages": [{"role": "user", "content": text}]}, config)

    state = await turn("Research something in the background.")
    started = tool_results(state, "start_async_task")
    task_id = TASK_ID.search(started[0]).group(0)
    thread = await client.threads.get(task_id)
    assert thread["metadata"]["subagent_name"] == "echoer"
    [first_run] = await client.runs.list(task_id)
    assert first_run["assistant_id"] == "046b5dc7-2108-582c-9c6c-31d556d138f0"

    state = await turn("How is it going?")
    checked = json.loads(tool_results(state, "check_async_task")[-1])
    assert checked["status"] in ("pending", "running"), checked

    state = await turn("Change direction.")
    assert task_id in tool_results(state, "update_async_task")[-1]
    runs = await client.runs.list(task_id)
    assert len(runs) == 2
    newest = runs[0]
    await wait_for_status(client, task_id, first_run["run_id"], ("interrupted",))
    await wait_for_status(client, task_id, newest["run_id"], ("success",))

    state = await turn("Is it done?")
    checked = json.loads(tool_results(state, "check_async_task")[-1])
    assert checked["status"] == "success", checked
    assert checked["result"] == "echo: new direction", checked

    state = await turn("Start another, then drop it.")
    second_id = TASK_ID.search(tool_results(state, "start_async_task")[-1]).group(0)
    assert second_id != task_id
    assert second_id in tool_results(state, "cancel_async_task")[-1]
    [second_run] = await client.runs.list(second_id)
    await wait_for_status(client, second_id, second_run["run_id"], ("interrupted",))

    state = await turn("What tasks do I have?")
    listing = tool_results(state, "list_async_tasks")[-1]
    assert task_id in listing and second_id in listing, listing
    assert "success" in listing and "cancelled" in listing, listing
    assert not model.steps, "every scripted step ran"
    # The middleware's own pull noticed the finished task and told the supervisor, unprompted.
    assert any(task_id in notice and "success" in notice for notice in model.notices), model.notices
    tasks = state["async_tasks"]
    assert set(tasks) == {task_id, second_id}
