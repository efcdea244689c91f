"""The tests' one way to wait for something that happens in its own time (an engine's start, a
server's answer, a download's progress): ``eventually`` asks until the answer is yes, and fails
naming what it waited for when it never is."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 20.0, every: float = 0.05, what: str = "") -> T:
    """``check()``'s first truthy answer, asked every ``every`` seconds for ``timeout`` seconds;
    an AssertionError that names ``what`` (and the last answer) when none came. ``check`` may
    raise AssertionError to stop at once (a server that exited)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'the condition'} not reached in {timeout:g} s (last: {answer!r})")
        time.sleep(every)
