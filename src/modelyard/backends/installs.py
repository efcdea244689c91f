"""Installs: a backend's engine or environment installed in the background (a build of
llama-server, a managed virtualenv), with its progress for the web UI. One install per backend
at a time; the jobs live for the server's run."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from modelyard.backends.registry import Backends
from modelyard.errors import EngineBuilding, InstallNotFound, InstallRunning, ModelyardError, Unsupported

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class Install:
    id: int
    backend: str
    variant: str
    version: str | None
    state: str = RUNNING
    stage: str = "starting"
    step: float = 0
    steps: float = 1
    started: float = field(default_factory=time.time)
    finished: float | None = None
    where: str | None = None  # what was installed (a binary, an environment's folder)
    error: str | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Installs:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.jobs: dict[int, Install] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    def get(self, job: int) -> Install:
        if job not in self.jobs:
            raise InstallNotFound(job)
        return self.jobs[job]

    def all(self) -> list[Install]:
        return sorted(self.jobs.values(), key=lambda j: j.id, reverse=True)

    async def start(self, name: str, variant: str, version: str | None = None) -> Install:
        backend = self.backends.get(name)
        if not getattr(backend, "installable", True):
            backend.install(variant, lambda stage, step, steps: None, version)  # says why, and how
        if variant not in self.backends.variants(backend):
            raise Unsupported(
                f"unknown variant {variant!r}", hint=" or ".join(self.backends.variants(backend))
            )
        if any(j.backend == name and j.state == RUNNING for j in self.jobs.values()):
            raise InstallRunning(name)
        job = Install(next(self._ids), name, variant, version)
        self.jobs[job.id] = job
        loop = asyncio.get_running_loop()

        def progress(stage: str, step: float, steps: float) -> None:  # from the install's thread
            loop.call_soon_threadsafe(self._update, job, stage, step, steps)

        async def run() -> None:
            try:
                job.where = await asyncio.to_thread(backend.install, variant, progress, version)
                job.state, job.stage, job.step = DONE, "done", job.steps
            except ModelyardError as e:
                job.state, job.error, job.hint = FAILED, e.message, e.hint
            except Exception as e:  # said on the job; the server keeps running
                job.state, job.error = FAILED, f"{e.__class__.__name__}: {e}"
            finally:
                job.finished = time.time()
                self.backends.forget(name)  # its installed state is looked at again
                self._notify()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def building(self, name: str, variant: str) -> EngineBuilding:
        """What a load (or a creation) that needs ``name`` answers once it is installing: the
        install that runs now, else a new one of ``variant``, named in EngineBuilding."""
        running = next((j for j in self.all() if j.backend == name and j.state == RUNNING), None)
        job = running or await self.start(name, variant)
        return EngineBuilding(name, job.id)

    def _update(self, job: Install, stage: str, step: float, steps: float) -> None:
        if job.state == RUNNING:
            job.stage, job.step, job.steps = stage, step, max(1, steps)
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def events(self, job_id: int) -> AsyncIterator[dict[str, Any]]:
        """The job now, then at each change, until it ends."""
        job = self.get(job_id)
        while True:
            changed = self._changed
            yield job.to_json()
            if job.state != RUNNING:
                return
            await changed.wait()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()  # the thread finishes its step; nothing waits for it
