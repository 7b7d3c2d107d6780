"""Fixtures of the interop suite: the server under test and official langgraph-sdk clients.

The server is named by the environment variable ERRAND_INTEROP_URL (required), e.g.
`http://127.0.0.1:8123`. The session waits (bounded) for `GET /ok` before the first test.
Every async test runs under a deadline, so a server that never answers fails the test instead
of hanging the suite.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client

URL_ENV = "ERRAND_INTEROP_URL"
READY_TIMEOUT_S = 30.0
# Upper bound for one test; the slowest ones take ~7 s against the Python server.
TEST_TIMEOUT_S = 60.0
# Upper bound for one HTTP read (the Python server sends keep-alives every 5 s on long calls).
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def _server_url() -> str:
    url = os.environ.get(URL_ENV, "").strip().rstrip("/")
    if not url:
        raise pytest.UsageError(
            f"{URL_ENV} is not set: point it at the server under test, "
            "e.g. ERRAND_INTEROP_URL=http://127.0.0.1:8123 (or run `cargo xtask interop`)"
        )
    return url


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.help:
        _server_url()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every async test under TEST_TIMEOUT_S."""
    for item in items:
        test = getattr(item, "obj", None)
        if test is None or not inspect.iscoroutinefunction(test):
            continue

        def bounded(original):
            @functools.wraps(original)
            async def run(*args, **kwargs):
                try:
                    return await asyncio.wait_for(original(*args, **kwargs), TEST_TIMEOUT_S)
                except asyncio.TimeoutError:
                    pytest.fail(f"test did not finish within {TEST_TIMEOUT_S} s")

            return run

        item.obj = bounded(test)


@pytest.fixture(scope="session")
def url() -> str:
    """The base URL of the server under test; waits until it answers `GET /ok`."""
    base = _server_url()
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base}/ok", timeout=2.0)
            if response.status_code == 200 and response.json().get("ok") is True:
                return base
            last_error = f"{response.status_code} {response.text!r}"
        except httpx.HTTPError as error:
            last_error = repr(error)
        time.sleep(0.2)
    pytest.exit(f"GET {base}/ok did not answer ok within {READY_TIMEOUT_S} s: {last_error}", 3)


@pytest.fixture
async def client(url: str):
    """The official async client, `langgraph_sdk.get_client(url=...)`, without an API key."""
    async with get_client(url=url, api_key=None, timeout=HTTP_TIMEOUT) as lg:
        yield lg


@pytest.fixture
def sync_client(url: str):
    """The official sync client, `langgraph_sdk.get_sync_client(url=...)`, without an API key."""
    with get_sync_client(url=url, api_key=None, timeout=HTTP_TIMEOUT) as lg:
        yield lg


@pytest.fixture
async def raw(url: str):
    """A plain httpx client, only for what the SDK does not expose (status codes, headers)."""
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as http:
        yield http
