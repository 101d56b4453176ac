"""Waiting on a condition, never on the clock: a test polls for what it needs and fails naming it. The suite's one
polling helper; a condition that must also fail fast (a process that died) asserts inside itself."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout_s: float = 60.0,
    what: str = "the condition",
    poll_s: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Polls `condition` until it returns something truthy, and returns that; fails after `timeout_s`, with what
    `detail` says then (a server's log, say)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never came within {timeout_s:.0f} s" + (f"\n{detail()}" if detail else ""))
        time.sleep(poll_s)
    return value
