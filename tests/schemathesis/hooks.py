"""Schemathesis hooks for `cargo xtask schemathesis`: keep generated runs from waiting for years.

A run created with `after_seconds` waits that long before it starts, and an answer that waits
for a run (`runs/wait`, `join`, a stream) waits with it, sending a keep-alive every few seconds
so that no read timeout ends it. So a delay the schema allows (up to ten years) is cut to at
most `MAX_TEST_DELAY` seconds before it is sent; a value the schema does not allow (negative,
past `ERRAND_MAX_AFTER_SECONDS`, not a number) is sent as generated, for the server to refuse.
"""

import os

import schemathesis

MAX_TEST_DELAY = 0.5
MAX_AFTER_SECONDS = float(os.environ["ERRAND_MAX_AFTER_SECONDS"])


def is_allowed_delay(value):
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= MAX_AFTER_SECONDS
    )


@schemathesis.hook
def before_call(context, case, **kwargs):
    # Before every request, in every phase (the coverage phase applies no `map_*` hook).
    body = case.body
    if isinstance(body, dict) and is_allowed_delay(body.get("after_seconds")):
        body["after_seconds"] = min(body["after_seconds"], MAX_TEST_DELAY)
