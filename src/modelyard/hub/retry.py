"""Retrying a blocking hub call with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_retries(
    fn: Callable[[], T], *, retryable: Callable[[Exception], float | None], attempts: int = 4
) -> T:
    """Call ``fn``; when ``retryable`` gives a delay for its error, wait (doubling) and call again."""
    backoff = 0.0
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:
            delay = retryable(e)
            if delay is None or attempt == attempts - 1:
                raise
            backoff = max(delay, backoff * 2)
            time.sleep(min(backoff, 30.0))
    raise AssertionError("unreachable")
