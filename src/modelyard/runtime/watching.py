"""What the runtime does unasked: every WATCH_EVERY seconds it unloads the models idle past their
keep-alive (the Ollama API's keep_alive, else MODELYARD_IDLE_UNLOAD) and scales the deployments
that scale themselves (scaling.py); on memory pressure (the monitor's samples) it unloads the
least recently used model that serves and is idle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from modelyard.catalog.records import Deployment
from modelyard.errors import ModelyardError
from modelyard.runtime.clock import Clock
from modelyard.runtime.scaling import Scaling
from modelyard.runtime.serving import Serving
from modelyard.runtime.supervisor import State

log = logging.getLogger(__name__)
WATCH_EVERY = 0.25  # seconds between looks for idle models


class Port(Protocol):
    """What the watching sees of the runtime: what it serves (snapshots), whether a change is
    under way, and the two changes it makes."""

    clock: Clock

    def serving(self) -> list[Serving]: ...

    def changing(self) -> bool: ...

    def deployment(self, name: str) -> Deployment | None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    async def unload(self, name: str, *, force: bool = False) -> None: ...

    async def evict(self, dep: Deployment, reason: str) -> None: ...

    async def scale(self, name: str, replicas: int) -> None: ...


def idle(s: Serving) -> bool:
    """Whether a model has had no request for longer than it is kept loaded."""
    if not s.loaded or s.kept_for is None or s.in_flight or s.waiting:
        return False
    if s.instances.get(State.PENDING):
        return False  # waiting for a place: not idle
    return s.kept_for == 0 or s.idle > s.kept_for


class Watching:
    def __init__(self, runtime: Port) -> None:
        self.rt = runtime
        self.scaling = Scaling()
        self._scaling: set[str] = set()  # models being scaled now

    async def run(self) -> None:
        """Look for idle models and deployments to scale until cancelled."""
        rt = self.rt
        while True:
            await rt.clock.sleep(WATCH_EVERY)
            try:
                now = rt.clock.now()
                for s in rt.serving():
                    if idle(s) and not rt.changing():
                        rt.spawn(self._idle_unload(s.model))
                    replicas = self.scaling.wanted(s, now)
                    if replicas is not None and s.model not in self._scaling:
                        self._scaling.add(s.model)
                        rt.spawn(self._scale(s.model, replicas))
            except Exception:
                log.exception("runtime watch")

    async def _scale(self, name: str, replicas: int) -> None:
        try:
            log.info("scaling %s to %d replica(s)", name, replicas)
            await self.rt.scale(name, replicas)
        except ModelyardError as e:
            log.warning("could not scale %s to %d replica(s): %s", name, replicas, e)
            self.scaling.refused(name, self.rt.clock.now())
        finally:
            self._scaling.discard(name)

    async def _idle_unload(self, name: str) -> None:
        with contextlib.suppress(ModelyardError):
            log.info("unloading %s: idle", name)
            await self.rt.unload(name)

    async def relieve_pressure(self, _sample: object = None) -> str | None:
        """Unload the least recently used model that is serving (not loading) and has no request
        in flight or waiting. Returns what it did, or None when there is none."""
        rt = self.rt
        idle = [
            (-s.idle, s.model)
            for s in rt.serving()
            if s.loaded and set(s.instances) == {State.RUNNING} and not s.in_flight and not s.waiting
        ]
        if not idle or rt.changing():
            return None
        _, name = min(idle)  # the longest idle (then by name)
        done = f"unloaded {name!r}, the least recently used idle model, to relieve memory pressure"
        dep = rt.deployment(name)
        try:
            if dep is None or dep.jit:  # loaded on demand: forgotten, a request loads it again
                await rt.unload(name)
                return done
            await rt.evict(dep, "unloaded to relieve memory pressure")
        except ModelyardError as e:
            log.warning("could not unload %s under memory pressure: %s", name, e)
            return None
        return f"{done}; its deployment stays, and it loads again when memory frees"
