"""The `echo` graph of the interop suite, for the Python LangGraph server (the peer).

One node, `echo`, which appends the AI message `echo: <text of the last message>`:

- a last message starting with `sleep=<float>` first sleeps that many seconds (cancellably);
- a last message starting with `fail=<text>` raises `EchoError(<text>)`, so the run ends `error`.

errand's Rust server hosts a graph with the same name and the same behaviour.
"""

import asyncio
import re

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph

_SLEEP = re.compile(r"^sleep=([0-9]*\.?[0-9]+)")
_FAIL = "fail="


class EchoError(ValueError):
    """The failure the graph raises on `fail=<text>`.

    It derives from ValueError only because langgraph-api replaces the message of exception
    types it does not allow-list with "An internal error occurred"; the class name is what
    the wire carries (`{"error": "EchoError", "message": "<text>"}`).
    """


def _text(message) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, list):
        return "".join(
            block.get("text", "") if isinstance(block, dict) else str(block) for block in content
        )
    return str(content)


async def echo(state: MessagesState) -> dict:
    messages = state.get("messages") or []
    last = _text(messages[-1]) if messages else ""
    sleep = _SLEEP.match(last)
    if sleep:
        await asyncio.sleep(float(sleep.group(1)))
    elif last.startswith(_FAIL):
        raise EchoError(last[len(_FAIL) :])
    return {"messages": [AIMessage(content=f"echo: {last}")]}


builder = StateGraph(MessagesState)
builder.add_node("echo", echo)
builder.add_edge(START, "echo")
builder.add_edge("echo", END)
graph = builder.compile()
