"""One instance's life: start its engine, wait until it is healthy, put it in the rotation, hear
of its exit the moment it happens, and start it again after a backoff.

The backoff doubles with each restart (capped), and starts over once an instance has served
healthily for ``restart_reset`` seconds: a crash a day apart is not a crash loop. A start that
fails while requests wait hands them its error, so nobody waits for an engine that cannot come.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from modelyard.backends import flags
from modelyard.backends.base import AnyBackend, Placement
from modelyard.backends.common import GATEWAY_OPTIONS
from modelyard.catalog.records import Model
from modelyard.config import Settings
from modelyard.errors import EngineError, EngineUnavailable, ModelyardError, NoWorker
from modelyard.runtime.clock import Clock
from modelyard.runtime.executor import LOST, Claim, Engine, Executor, Launch
from modelyard.runtime.queue import Queue, Slot

log = logging.getLogger(__name__)
HEALTH_EVERY = 0.1  # the longest wait between health checks while an engine starts
# While an engine starts, its health is checked every 1% of the time it has taken so far (from
# 5 ms, up to HEALTH_EVERY): a quick engine serves within a few ms of being ready, a slow one is
# not asked hundreds of times, and the wait a check adds is 1% of the start at most.
FIRST_EVERY, SHARE = 0.005, 0.01
REPLACE_EVERY = 2.0  # seconds between tries to place an instance that has no place
RECHECKS = 3  # health checks of an instance the gateway could not reach, HEALTH_EVERY x 3 apart


class State(StrEnum):
    PENDING = "pending"  # not started yet; on a cluster also: it fits on no worker yet
    STARTING = "starting"
    RUNNING = "running"
    ERROR = "error"
    RESTARTING = "restarting"
    UNREACHABLE = "unreachable"  # its node is gone; waiting to be placed again
    STOPPED = "stopped"


@dataclass(frozen=True)
class Setup:
    """How a deployment's engines start. Each instance keeps the one it was made with, so that
    while a deployment rolls to a new setup its old instances restart as they were."""

    backend: AnyBackend
    options: BaseModel  # the backend's options model, validated, n_ctx resolved
    version: str | None = None  # a build of the backend; None: the default one
    args: tuple[str, ...] = ()  # more engine arguments, after the backend's own
    env: Mapping[str, str] = field(default_factory=dict)  # the engines' own variables
    restart: bool = True  # start again after an exit

    def same(self, other: Setup) -> bool:
        """Whether the engines would start the same way (``restart`` and the options only the
        gateway reads aside)."""
        return (
            self.backend is other.backend
            and self.engine_options() == other.engine_options()
            and self.version == other.version
            and self.args == other.args
            and dict(self.env) == dict(other.env)
        )

    def engine_options(self) -> dict[str, Any]:
        """The options the engine starts with (those only the gateway reads left out)."""
        return self.options.model_dump(exclude=set(GATEWAY_OPTIONS))


@dataclass
class Live:
    """An instance as the runtime holds it in memory."""

    id: int
    model: str
    adapter: str | None
    placement: Placement | None  # None: no place yet (pending), or its node is gone
    ready: asyncio.Future[None]  # its first start: served, or failed
    setup: Setup
    claims: tuple[Claim, ...] = ()  # the memory the scheduler holds for it on its nodes
    state: State = State.PENDING
    engine: Engine | None = None
    starts: int = 0
    restarts: int = 0
    backoff: int = 0  # restarts since it last served healthily for restart_reset seconds
    ready_at: float | None = None  # when it last became ready (the runtime's clock)
    task: asyncio.Task[None] | None = None
    error: str | None = None  # its last error, as recorded

    def on(self, node: str) -> bool:
        """Whether it runs on ``node``, or holds a share there (distributed)."""
        where = self.placement
        return any(c.node == node for c in self.claims) or (
            where is not None and (where.node == node or node in where.peers)
        )


class Port(Protocol):
    """What a supervisor needs of the runtime, and all it may touch."""

    settings: Settings
    clock: Clock
    executor: Executor

    def model(self, name: str) -> Model:
        """The library's record of ``name``."""

    def queue(self, name: str) -> Queue:
        """The queue of ``name``'s requests, where an instance's slot goes once it serves."""

    def placed(self, name: str) -> bool:
        """Whether an instance of ``name`` has a place (it serves, starts or restarts there)."""

    def record(self, instance_id: int, **fields: Any) -> None:
        """Write what changed of an instance (state, url, error, ...) where the API reads it."""

    def restarted(self, name: str) -> None:
        """Count a restart of an instance of ``name``."""

    async def relocate(self, live: Live) -> None:
        """Give an instance without a place one; WontFit while no node takes it."""


class Supervisor:
    def __init__(self, runtime: Port) -> None:
        self.rt = runtime

    async def run(self, live: Live) -> None:
        """Start the instance and keep it running until the task is cancelled (a stop)."""
        while True:
            if live.placement is None:
                await self._place(live)
            try:
                await self._start(live)
            except asyncio.CancelledError:
                raise
            except ModelyardError as e:
                why = self._failed(live, e)
            except Exception as e:  # a bug: keep the server up, record it
                log.exception("instance %s failed to start", live.id)
                why = self._failed(live, EngineError(f"instance {live.id} could not start: {e}"))
            else:
                assert live.engine is not None
                code = await live.engine.wait()
                if code == LOST:  # its node is gone: placed again at once, elsewhere
                    self._lost(live)
                    continue
                why = self._exited(live, code)
            if not live.setup.restart:
                self._set(live, State.ERROR, note=f"{why}; auto-restart is off")
                return
            delay = self.backoff(live)
            self._set(live, State.RESTARTING, note=f"{why}; restart in {delay:g} s")
            await self.rt.clock.sleep(delay)
            live.restarts += 1
            self.rt.restarted(live.model)
            self.rt.record(live.id, restarts=live.restarts)

    def waits(self, live: Live, why: str) -> None:
        """A new instance that fits on no worker yet: `pending`, with the reason, until one takes
        it (see _place)."""
        self._set(live, State.PENDING, error=why, note=f"waiting for a worker: {why}")
        self._unplaced(live, why)

    def _unplaced(self, live: Live, why: str) -> None:
        """While no instance of its model has a place, its requests are answered at once with
        ``why`` (503), not left to wait."""
        if not self.rt.placed(live.model):
            self.rt.queue(live.model).fail(NoWorker(live.model, why), live.adapter)

    def _lost(self, live: Live) -> None:
        """An instance whose node is gone: out of the rotation, `unreachable`, without a place."""
        self.rt.queue(live.model).drop_slot(live.id)
        assert live.placement is not None
        note = f"its worker {live.placement.node} is gone"
        log.warning("%s: instance %s: %s", live.model, live.id, note)
        self._set(live, State.UNREACHABLE, error=note, note=note)
        live.placement, live.claims = None, ()

    async def _place(self, live: Live) -> None:
        """Place an instance that has no place (pending, or its node is gone) as soon as some
        node takes it, looked for every REPLACE_EVERY seconds: at once after a loss, no backoff
        (it was not its fault). Requests in the queue wait for it meanwhile."""
        lost = live.state == State.UNREACHABLE
        first = live.error if lost else None  # what happened: its worker is gone
        while True:
            if lost:
                lost = False  # at once, the first time
            else:
                await self.rt.clock.sleep(REPLACE_EVERY)
            try:
                await self.rt.relocate(live)
                self.rt.queue(live.model).fail(None, live.adapter)  # requests may wait for it again
                return
            except ModelyardError as e:
                why = f"{first}; {e.message}" if first else e.message
                if why != live.error:
                    live.error = why
                    self.rt.record(live.id, error=why)
                self._unplaced(live, why)

    def backoff(self, live: Live) -> float:
        """The delay before the next start: doubling per restart, from the first again once the
        instance had served for ``restart_reset`` seconds."""
        s = self.rt.settings
        if live.ready_at is not None and self.rt.clock.now() - live.ready_at >= s.restart_reset:
            live.backoff = 0
        delay = min(s.restart_backoff * 2**live.backoff, s.restart_backoff_max)
        live.backoff += 1
        live.ready_at = None
        return float(delay)

    def _set(self, live: Live, state: State, *, note: str | None = None, **fields: object) -> None:
        live.state = state
        if "error" in fields:
            live.error = fields["error"]  # type: ignore[assignment]
        self.rt.record(live.id, state=state, note=note, **fields)

    async def _start(self, live: Live) -> None:
        rt = self.rt
        model = rt.model(live.model)
        adapter = model.adapter(live.adapter) if live.adapter else None
        setup, where = live.setup, live.placement
        assert where is not None
        spec = setup.backend.engine(model, setup.options, where, adapter, setup.version)
        if setup.args:
            spec = replace(spec, argv=[*spec.argv, *flags.split(setup.args)])
        queue = rt.queue(live.model)
        queue.fail(None, live.adapter)  # a new try: newcomers wait for it
        live.starts += 1
        self._set(live, State.STARTING, starts=live.starts, error=None, node=where.node, url=None)
        key = secrets.token_urlsafe(24) if spec.key_env else None
        try:
            engine = await rt.executor.launch(
                Launch(live.id, live.starts, spec, where, dict(setup.env), key, live.claims)
            )
        except OSError as e:
            raise EngineError(f"the engine of {live.model!r} could not be started: {e}") from e
        live.engine = engine
        rt.record(live.id, url=engine.url)
        await self._healthy(live, engine, spec.remote)
        live.ready_at = rt.clock.now()
        self._set(live, State.RUNNING)
        headers = {"Authorization": f"Bearer {key}"} if key else dict(spec.headers)
        slot = Slot(live.id, engine.url, spec.slots + spec.queued, live.adapter, headers, spec.slots)
        slot.cache_tokens = spec.cache_tokens
        queue.set_slot(slot)
        if not live.ready.done():
            live.ready.set_result(None)

    async def _healthy(self, live: Live, engine: Engine, remote: str | None = None) -> None:
        """Wait for ``engine`` to answer; EngineError if it exits first or is not ready in
        time (a server elsewhere, ``remote``, exits when nothing answers at its address)."""
        rt = self.rt
        timeout = rt.settings.health_timeout
        deadline = rt.clock.now() + timeout
        exited = asyncio.ensure_future(engine.wait())
        started = rt.clock.now()
        try:
            while True:
                code = engine.returncode()
                if code is not None and remote is not None:
                    raise EngineUnavailable(
                        f"no server answers at {remote} ({live.model!r})", hint="is it running?"
                    )
                if code is not None:
                    raise EngineError(
                        f"the engine of {live.model!r} exited with status {code} while starting",
                        hint=f"`modelyard logs {live.model}` shows its log",
                        log=await rt.executor.tail_log(engine.log, 15),
                    )
                if await engine.healthy():
                    return
                if rt.clock.now() >= deadline:
                    await engine.stop(rt.settings.stop_grace)
                    raise EngineError(
                        f"the engine of {live.model!r} was not ready after {timeout:g} s",
                        hint=f"`modelyard logs {live.model}` shows its log",
                        log=await rt.executor.tail_log(engine.log, 15),
                    )
                every = min(HEALTH_EVERY, max(FIRST_EVERY, SHARE * (rt.clock.now() - started)))
                pause = asyncio.ensure_future(rt.clock.sleep(every))
                await asyncio.wait({exited, pause}, return_when=asyncio.FIRST_COMPLETED)
                pause.cancel()
        finally:
            exited.cancel()

    def _failed(self, live: Live, error: ModelyardError) -> str:
        """Record a start that failed; what to say about it."""
        self._set(live, State.ERROR, error=str(error), note=error.message)
        if not live.ready.done():
            live.ready.set_exception(error)
            live.ready.exception()  # retrieved: load() may be gone (a JIT load's waiters get it below)
        queue = self.rt.queue(live.model)
        if not queue.serving(live.adapter):  # nothing serves them: the waiters would wait for nothing
            queue.fail(error, live.adapter)
        return "failed to start"

    def _exited(self, live: Live, code: int) -> str:
        """Record an engine that exited while it served; what to say about it."""
        queue = self.rt.queue(live.model)
        queue.drop_slot(live.id)  # out of the rotation the moment it exits
        note = f"the engine exited with status {code}"
        log.warning("%s: instance %s: %s", live.model, live.id, note)
        self._set(live, State.ERROR, error=note, note=note, url=None)  # nothing answers there now
        if not live.setup.restart and not queue.serving(live.adapter):
            queue.fail(
                EngineError(f"the engine of {live.model!r} exited and auto-restart is off"), live.adapter
            )
        return note

    async def recheck(self, live: Live, slot: Slot) -> None:
        """An instance the gateway could not reach: back in the rotation if it answers its
        health check, else stopped (its supervisor then restarts it)."""
        engine = live.engine
        if engine is None:
            return
        for _ in range(RECHECKS):
            if engine.returncode() is not None:
                return  # its exit is being handled
            if await engine.healthy():
                if live.engine is engine and live.state == State.RUNNING:
                    self.rt.queue(live.model).set_slot(slot)
                return
            await self.rt.clock.sleep(HEALTH_EVERY * 3)
        log.warning("%s: instance %s does not answer; stopping it", live.model, live.id)
        await engine.stop(self.rt.settings.stop_grace)
