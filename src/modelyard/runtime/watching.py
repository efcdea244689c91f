"""What the runtime does unasked: every WATCH_EVERY seconds it unloads the models idle past their
keep-alive (the Ollama API's keep_alive, else MODELYARD_IDLE_UNLOAD), and on memory pressure (the
monitor's samples) the least recently used model that serves and is idle."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from modelyard.errors import ModelyardError
from modelyard.runtime.supervisor import State

if TYPE_CHECKING:
    from modelyard.runtime.runtime import Runtime

log = logging.getLogger(__name__)
WATCH_EVERY = 0.25  # seconds between looks for idle models


class Watching:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def run(self) -> None:
        """Look for idle models until cancelled."""
        rt = self.rt
        while True:
            await rt.clock.sleep(WATCH_EVERY)
            try:
                for name in list(rt.running):
                    if self.idle(name) and not rt.changing():
                        rt.spawn(self._idle_unload(name))
            except Exception:
                log.exception("runtime watch")

    def idle(self, name: str) -> bool:
        """Whether ``name`` has had no request for longer than it is kept loaded."""
        rt = self.rt
        ttl = rt.kept_for(name)
        queue = rt.queues.get(name)
        if ttl is None or queue is None or queue.in_flight or queue.waiting:
            return False
        running = rt.running.get(name)
        if running is not None and any(live.state == State.PENDING for live in running.instances.values()):
            return False  # waiting for a place: not idle
        return ttl == 0 or rt.clock.now() - queue.last_used > ttl

    async def _idle_unload(self, name: str) -> None:
        with contextlib.suppress(ModelyardError):
            log.info("unloading %s: idle", name)
            await self.rt.unload(name)

    async def relieve_pressure(self, _sample: object = None) -> str | None:
        """Unload the least recently used model that is serving (not loading) and has no request
        in flight or waiting. Returns what it did, or None when there is none."""
        rt = self.rt
        idle = []
        for name, running in rt.running.items():
            queue = rt.queues.get(name)
            serving = all(live.state == State.RUNNING for live in running.instances.values())
            if serving and queue is not None and not queue.in_flight and not queue.waiting:
                idle.append((queue.last_used, name))
        if not idle or rt.changing():
            return None
        _, name = min(idle)
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
