"""Time for the runtime's rules (backoff, health deadline, drain and queue limits, idle unload):
the system's monotonic clock in the server (the tests' FakeClock, moved by hand, is in
tests/runtime/fake_clock.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
