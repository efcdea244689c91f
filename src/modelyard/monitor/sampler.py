"""Samples CPU, memory and GPUs in the background, keeps a short history, tells subscribers,
and calls back on memory pressure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from modelyard.monitor import gpus as gpu_probe

log = logging.getLogger(__name__)


@dataclass
class Sample:
    at: float  # unix time
    cpu_percent: float
    memory_used: int
    memory_total: int
    memory_percent: float
    gpus: list[gpu_probe.Gpu] = field(default_factory=list)
    pressure_percent: float = 90.0  # the share of memory at which it is pressure (MODELYARD_MEMORY_PRESSURE)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.gpus:
            del data["gpus"]  # no GPU section when there is none
        return data


@dataclass
class Event:
    at: float
    kind: str  # "memory_pressure", "unloaded"
    message: str


class Monitor:
    def __init__(
        self,
        *,
        interval: float = 1.0,
        history: int = 300,
        pressure: float = 0.9,
        on_pressure: Callable[[Sample], Awaitable[str | None]] | None = None,
    ) -> None:
        self.interval = interval
        self.pressure = pressure
        self.on_pressure = on_pressure
        self.history: deque[Sample] = deque(maxlen=history)
        self.events: deque[Event] = deque(maxlen=100)
        self._subscribers: set[asyncio.Queue[Sample]] = set()
        self._task: asyncio.Task[None] | None = None
        self._static_gpus = [g for g in gpu_probe.detect() if not g.live]

    def sample(self) -> Sample:
        mem = psutil.virtual_memory()
        used = mem.total - mem.available  # what programs hold; the page cache can be given back
        return Sample(
            at=time.time(),
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used=used,
            memory_total=mem.total,
            memory_percent=round(100 * used / mem.total, 1),
            gpus=gpu_probe.nvidia() + self._static_gpus,
            pressure_percent=round(100 * self.pressure, 1),
        )

    @property
    def current(self) -> Sample:
        return self.history[-1] if self.history else self.sample()

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # the first reading only sets the baseline
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                log.exception("monitor")

    async def tick(self) -> Sample:
        s = await asyncio.to_thread(self.sample)
        self.history.append(s)
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(s)
        if s.memory_percent >= 100 * self.pressure:
            self.note(
                "memory_pressure", f"memory at {s.memory_percent:.0f}% (threshold {100 * self.pressure:.0f}%)"
            )
            if self.on_pressure is not None:
                done = await self.on_pressure(s)
                if done:
                    self.note("unloaded", done)
        return s

    def note(self, kind: str, message: str) -> None:
        log.warning("%s: %s", kind, message)
        self.events.append(Event(at=time.time(), kind=kind, message=message))

    async def subscribe(self) -> AsyncIterator[Sample]:
        queue: asyncio.Queue[Sample] = asyncio.Queue(maxsize=10)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
