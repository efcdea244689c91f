"""The Runtime: turns deployments into running instances and keeps them running.

It lives in the server's event loop. Loads and unloads are serialised by one lock. A load asks
the load rules what it displaces, the placement whether it fits, and then starts the new
instances; what it displaces is drained first (its requests finish, up to the switch timeout) and
stops only once the new instances serve, so a load that fails leaves the old model serving. When
the new model fits only in the memory the old one holds, the old one stops first and is brought
back if the new one fails.

Each instance has a supervisor task (supervisor.py, which sees the runtime through its narrow
``Port``) that starts its engine through the executor (chosen where the app is composed:
executors.py), waits until it is healthy, hears of its exit at once, and restarts it with
exponential backoff. Requests are admitted by admission.py and wait in each model's bounded
queue (queue.py); the state these changes change, and every read of it (``serving()``), is the
Fleet (fleet.py) the Runtime extends; idle and pressure unloads are watching.py's. Time comes from a Clock, so tests run the rules on a
FakeClock with a FakeExecutor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from modelyard.backends import environments
from modelyard.backends.base import AnyBackend, Placement
from modelyard.backends.installs import Installs
from modelyard.backends.registry import Backends, kinds_for
from modelyard.catalog.records import Deployment, Model, Scheduling, WorkerNote
from modelyard.config import Settings
from modelyard.errors import (
    AdapterNotFound,
    EngineError,
    EngineUnavailable,
    InvalidSettings,
    LoadRefused,
    ModelNotLoaded,
    ModelyardError,
    NotFound,
    WontFit,
)
from modelyard.library import Library
from modelyard.library.settings import effective
from modelyard.runtime import comeback, placement
from modelyard.runtime.clock import Clock, SystemClock
from modelyard.runtime.comeback import HeldBack, HeldState
from modelyard.runtime.executor import Executor, Node
from modelyard.runtime.fleet import Fleet, Running
from modelyard.runtime.placement import Spot, files_of
from modelyard.runtime.queue import Ask, Queue, Slot
from modelyard.runtime.rules import Loaded, LoadPolicy
from modelyard.runtime.scheduler import Held, Verdict
from modelyard.runtime.supervisor import Live, Setup, State, Supervisor
from modelyard.runtime.turns import LOOK, Turns, prefetch
from modelyard.runtime.watching import Watching
from modelyard.usage.quotas import Quotas

log = logging.getLogger(__name__)
Offload = Callable[..., Awaitable[Any]]  # asyncio.to_thread, or a test's inline call


@dataclass
class Change:
    """What a load does: the instances it starts, and those that stop once they serve (or
    before they start, when ``stop_first``: the memory is needed)."""

    name: str
    running: Running
    starting: list[Live]
    leaving: dict[str, list[Live]]  # model -> its instances that go
    stop_first: bool
    before: dict[str, Running]  # what ran before, to bring back if the load fails
    kept: Deployment | None = None  # the deployment's record before (a stopped one), to keep
    waiting: list[Live] = field(default_factory=list)  # fit nowhere yet: pending (a cluster)


@dataclass(frozen=True)
class Moved:
    """An instance a drain replaced: the new one serves on ``node``."""

    model: str
    instance: int
    to: int
    node: str


@dataclass(frozen=True)
class Stayed:
    """An instance a drain could not move, and why."""

    model: str
    instance: int
    reason: str


@dataclass(frozen=True)
class Drained:
    worker: str
    moved: list[Moved]
    stayed: list[Stayed]


@dataclass(frozen=True)
class Fits:
    """What a deploy would do now, done as a check: how many of its instances would be placed,
    why the others not, and for each worker whether one fits there and why not."""

    model: str
    backend: str
    replicas: int
    placed: int
    reason: str | None  # why the others would not be placed; None: all would
    workers: list[Verdict]


class Runtime(Fleet):
    def __init__(
        self,
        settings: Settings,
        library: Library,
        *,
        executor: Executor,
        backends: Backends,
        policy: LoadPolicy | None = None,
        clock: Clock | None = None,
        quotas: Quotas | None = None,
        offload: Offload | None = None,
    ) -> None:
        super().__init__(settings, library, executor, clock or SystemClock())
        # blocking work (placement, asking an engine for its flags) goes to a thread; tests on a
        # FakeClock run it inline, so that time moves only when they say
        self.offload: Offload = offload or asyncio.to_thread
        self.quotas = quotas
        self.backends = backends
        self.installs = Installs(backends)  # engines installed in the background
        self.policy = policy or LoadPolicy.from_settings(
            settings.one_per_category, settings.exclusive, settings.max_loras
        )
        self.supervisor = Supervisor(self)
        self.watching = Watching(self)
        self._lock = asyncio.Lock()
        self._placing = asyncio.Lock()  # one instance without a place is placed at a time
        self._jit: dict[str, asyncio.Task[None]] = {}
        self.turns = Turns(self.clock, settings.swap_bound)
        self._watcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restoring: list[asyncio.Task[Any]] = []  # the deployments start() brings back
        self._comebacks: dict[str, asyncio.Task[None]] = {}
        library.is_loaded = self.is_loaded

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Stop what an earlier server left running, bring back the deployments, start watching."""
        stopped = await self.executor.stop_orphans()
        if stopped:
            log.warning("stopped %d engine process(es) an earlier server left running", len(stopped))
        for inst in self.store.instances():
            self.store.delete_instance(inst.id)
        for dep in self.store.deployments():
            if dep.jit:
                self.store.delete_deployment(dep.model)
            elif not dep.stopped:
                self._restoring.append(self.spawn(self._restore(dep)))
        self._watcher = asyncio.create_task(self.watching.run())

    async def restored(self) -> None:
        """Once the deployments an earlier server left have come back (or been held back)."""
        await asyncio.gather(*self._restoring, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A background task, referenced until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _restore(self, dep: Deployment, *, force: bool = False) -> None:
        """Bring a recorded deployment back; one that does not start stays recorded and is
        tried again (comeback.py)."""
        try:
            await self.deploy(dep, force=force)
        except ModelyardError as e:
            log.warning("could not load %s again: %s", dep.model, e)
            self._hold_back(dep, e.message)

    def _hold_back(self, dep: Deployment, reason: str, *, evicted: bool = False) -> None:
        """Note why ``dep`` has no instances, and plan its next try: after a backoff when it
        restarts (always after an eviction), never when its restart is off."""
        name = dep.model
        if self.store.deployment(name) is None:
            return  # forgotten meanwhile
        before = self.held_back.get(name)
        attempts = (before.attempts if before else 0) + 1
        retry = evicted or dep.restart
        s = self.settings
        wait = comeback.delay(attempts, base=s.restart_backoff, cap=s.restart_backoff_max, evicted=evicted)
        state = HeldState.EVICTED if evicted else HeldState.RETRYING if retry else HeldState.FAILED
        self.held_back[name] = HeldBack(state, reason, attempts, self.clock.now() + wait if retry else None)
        old = self._comebacks.pop(name, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        if retry:
            log.warning("%s is held back (%s): tried again in %.0f s", name, reason, wait)
            self._comebacks[name] = self.spawn(self._come_back(name, wait))

    async def _come_back(self, name: str, wait: float) -> None:
        await self.clock.sleep(wait)
        dep = self.store.deployment(name)
        if dep is None or dep.stopped or name in self.running or name not in self.held_back:
            return  # forgotten, stopped or loaded meanwhile
        await self._restore(dep)

    async def close(self) -> None:
        """Stop every engine process (the deployments stay: they load again next start)."""
        if self._watcher:
            self._watcher.cancel()
        for task in [*self._jit.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*(self._stop_model(name, forget=False) for name in list(self.running)))
        await self.executor.close()

    def backend_for(self, model: Model) -> AnyBackend:
        """The backend that serves ``model``: its deployment's, else the registry's choice."""
        running = self.running.get(model.name)
        if running is not None:
            return running.setup.backend
        return self.backends.for_model(model)

    # -- load and unload -----------------------------------------------------------------------

    async def load(
        self,
        name: str,
        *,
        adapter: str | None = None,
        replicas: int = 1,
        jit: bool = False,
        force: bool = False,
        env: dict[str, str] | None = None,
        by: str | None = None,
        scheduling: Callable[[Scheduling], Scheduling] | None = None,
    ) -> Deployment:
        """Load ``name`` (with ``adapter``) as ``replicas`` instances, after the load rules, and
        wait until they serve (an error if none does). A deployment kept for the model lends its
        backend, version, arguments, variables and scheduling (``scheduling`` changes it).
        ``by``: the key that asks (None: the local user), whose quota the load counts against."""
        kept = self.store.deployment(name)
        wish = Deployment(model=name, adapter=adapter, replicas=replicas, jit=jit, env=env or {})
        if kept is not None:
            wish = replace(
                kept, adapter=adapter, replicas=replicas, jit=jit, env=env or kept.env, stopped=False
            )
        if scheduling is not None:
            wish = replace(wish, scheduling=scheduling(wish.scheduling))
        return await self.deploy(wish, force=force, by=by)

    async def deploy(
        self, wish: Deployment, *, force: bool = False, roll: bool = False, by: str | None = None
    ) -> Deployment:
        """Make the deployment ``wish`` true and wait until it serves. A running deployment whose
        engines would start differently (settings, backend, version, arguments, variables) or
        elsewhere (its scheduling) rolls:
        one instance at a time, a new one serves before an old one drains and stops. ``roll``
        rolls it even when nothing changed (a reload). A model that was not loaded counts against
        the quota of ``by`` (the key that asks) once it serves. One that scales itself starts
        with its replicas held between its least and most."""
        if (a := wish.autoscale) is not None:
            if not 0 <= a.least <= a.most or a.most < 1:
                raise InvalidSettings(
                    f"autoscaling from {a.least} to {a.most} replicas", hint="0 <= least <= most, most >= 1"
                )
            wish = replace(wish, replicas=min(max(wish.replicas, a.least), a.most))
        async with self._lock:
            model = self.library.get(wish.model)
            setup = await self._setup(model, wish)
            current = self.running.get(wish.model)
            new = current is None or current.deployment.adapter != wish.adapter
            if new and self.quotas is not None:
                self.quotas.check(by, model)
            if current is not None and current.deployment.adapter == wish.adapter:
                moved = current.deployment.scheduling != wish.scheduling  # may go elsewhere now
                if roll or moved or not current.setup.same(setup):
                    return await self._roll(current, model, setup, wish, force)
                if current.setup.restart != setup.restart:
                    self._switch_restart(current, setup)
            change = await self._plan(model, setup, wish, force)
            if change.stop_first:
                await self._stop_leaving(change)
            for live in [*change.starting, *change.waiting]:
                live.task = self.spawn(self.supervisor.run(live))
        results = await asyncio.gather(*(live.ready for live in change.starting), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        async with self._lock:
            if change.starting and len(failures) == len(change.starting):
                await self._undo(change)
                raise failures[0]
            if not change.stop_first:
                await self._stop_leaving(change)
        if new and self.quotas is not None:
            self.quotas.charge(by, model)
        self._held_no_more(wish.model)
        return change.running.deployment

    def _held_no_more(self, name: str) -> None:
        self.held_back.pop(name, None)
        task = self._comebacks.pop(name, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _setup(self, model: Model, wish: Deployment) -> Setup:
        """How the deployment's engines start; what cannot start fails now, with what to do."""
        if wish.adapter is not None and model.adapter(wish.adapter) is None:
            raise AdapterNotFound(model.name, wish.adapter)
        if wish.backend:
            backend = self.backends.get(wish.backend)
            if backend.rank(model) is None:
                raise InvalidSettings(
                    f"the {backend.name} backend does not run {model.name!r}",
                    hint=f"backends that do: {', '.join(k.name for k in kinds_for(model)) or 'none'}",
                )
        else:
            backend = self.backends.for_model(model)
        placement.check(wish.scheduling)
        version = wish.backend_version
        await self._installed(backend, version)
        options = effective(model, backend.options)
        chosen = model.adapter(wish.adapter) if wish.adapter else None
        backend.engine(model, options, Placement(), chosen, version)  # refuses what it cannot do
        if wish.args:
            await self.offload(backend.check_args, wish.args, version)
        return Setup(backend, options, version, tuple(wish.args), dict(wish.env), wish.restart)

    async def _installed(self, backend: AnyBackend, version: str | None) -> None:
        """A missing engine fails now, with the command that installs it; where the settings
        install what is missing (MODELYARD_AUTO_INSTALL), one that installs on first use starts
        installing and says so (EngineBuilding, whose install job the client follows)."""
        try:
            backend.preflight(version)
        except EngineUnavailable:
            variant = environments.default_variant()  # this machine's build: cuda with an NVIDIA GPU
            if not (
                version is None
                and self.settings.installs_missing
                and backend.installs_on_first_use
                and variant in self.backends.variants(backend)
            ):
                raise
            raise await self.installs.building(backend.name, variant) from None

    def _record(self, setup: Setup, wish: Deployment) -> Deployment:
        return self.store.put_deployment(
            replace(wish, options=setup.options.model_dump(), stopped=False, id=None)
        )

    def _switch_restart(self, running: Running, setup: Setup) -> None:
        running.setup = setup
        for live in running.instances.values():
            live.setup = replace(live.setup, restart=setup.restart)

    async def _plan(self, model: Model, setup: Setup, wish: Deployment, force: bool) -> Change:
        name, adapter, replicas = model.name, wish.adapter, wish.replicas
        chosen = model.adapter(adapter) if adapter is not None else None
        current = self.running.get(name)
        same = current is not None and current.deployment.adapter == adapter
        if current is not None and same and len(current.instances) == replicas:
            current.deployment = self._record(current.setup, wish)
            return Change(name, current, [], {}, False, {})  # the same base + LoRA: reused
        loaded = [Loaded(n, r.category, r.deployment.adapter) for n, r in self.running.items() if n != name]
        displaced = self.policy.displaced(name, model.category, [adapter] if adapter else [], loaded)
        leaving = {other: list(self.running[other].instances.values()) for other in displaced}
        kept = list(current.instances.values()) if current is not None and same else []
        if current is not None and not same:
            leaving[name] = list(current.instances.values())  # a switch of LoRA: all go
        elif len(kept) > replicas:  # scale down: the newest go
            kept.sort(key=lambda live: live.id)
            leaving[name], kept = kept[replicas:], kept[:replicas]
        new = replicas - len(kept)
        wait = self.executor.elastic and not wish.jit  # a worker may join: what fits nowhere waits
        spots, stop_first, short = await self._fit(
            setup.backend, model, setup.options, chosen, new, leaving, force, wish.scheduling, wait=wait
        )
        await self._drain_leaving(leaving, force)
        before = {n: self.running[n] for n in leaving if n in self.running}
        record = self.store.deployment(name)
        running = Running(self._record(setup, wish), setup, model.category)
        running.instances = {live.id: live for live in kept}
        starting = [self._new_live(running, spot) for spot in spots]
        waiting = [self._new_live(running, None) for _ in range(new - len(spots))]
        self.running[name] = running
        self.queue(name).fail(None, adapter)
        for live in waiting:
            assert short is not None
            self.supervisor.waits(live, short.message)
        return Change(name, running, starting, leaving, stop_first, before, record, waiting)

    def _new_live(self, running: Running, spot: Spot | None) -> Live:
        """A new instance of ``running`` at ``spot`` (None: none yet, it waits for one)."""
        dep = running.deployment
        inst = self.store.add_instance(dep.model)
        where, claims = (spot.placement, spot.claims) if spot is not None else (None, ())
        live = Live(inst.id, dep.model, dep.adapter, where, self._future(), running.setup, claims)
        running.instances[live.id] = live
        return live

    async def _roll(
        self, running: Running, model: Model, setup: Setup, wish: Deployment, force: bool
    ) -> Deployment:
        """Bring a running deployment to ``setup`` one instance at a time (the lock held): a new
        instance serves before an old one drains and stops, so no request fails. A new instance
        that cannot start ends the roll, and the old ones serve on."""
        name = model.name
        before = running.setup, running.deployment
        olds = sorted(running.instances.values(), key=lambda live: live.id)
        extra, olds = olds[wish.replicas :], olds[: wish.replicas]
        running.setup, running.deployment = setup, self._record(setup, wish)
        if extra:
            await self._retire(name, running, extra, force)
        rolled = 0
        try:
            for old in olds:
                await self._replace(running, model, old, force)
                rolled += 1
            for _ in range(wish.replicas - len(olds)):
                await self._replace(running, model, None, force)
        except ModelyardError:
            if rolled == 0:  # none took the new setup: the deployment stays as it was
                running.setup = before[0]
                running.deployment = self.store.put_deployment(
                    replace(before[1], replicas=len(running.instances))
                )
            raise
        log.info("%s: rolled %d instance(s) to its new setup", name, rolled)
        return running.deployment

    async def _replace(
        self, running: Running, model: Model, old: Live | None, force: bool, *, keep_old: bool = False
    ) -> Live:
        """Start a new instance with the deployment's setup and, once it serves, drain and stop
        ``old``. When both do not fit, ``old`` goes first, unless ``keep_old``: then WontFit."""
        dep = running.deployment
        chosen = model.adapter(dep.adapter) if dep.adapter else None
        leaving = {model.name: [old]} if old is not None and not keep_old else {}
        spots, stop_first, _ = await self._fit(
            running.setup.backend, model, running.setup.options, chosen, 1, leaving, force, dep.scheduling
        )
        if old is not None and stop_first:
            await self._retire(model.name, running, [old], force)
        live = self._new_live(running, spots[0])
        live.task = self.spawn(self.supervisor.run(live))
        try:
            await live.ready
        except BaseException:
            await self._stop_instance(model.name, live, remove=True)
            running.instances.pop(live.id, None)
            raise
        if old is not None and not stop_first:
            await self._retire(model.name, running, [old], force)
        return live

    async def _retire(self, name: str, running: Running, lives: list[Live], force: bool) -> None:
        """Drain instances (their requests finish, up to the switch timeout unless forced), stop
        and forget them."""
        ids = [live.id for live in lives]
        queue = self.queue(name)
        queue.drain(ids)
        if not force and not await queue.settled(ids, self.settings.switch_timeout):
            log.warning("%s: stopping instance(s) %s with requests in flight", name, ids)
        await asyncio.gather(*(self._stop_instance(name, live, remove=True) for live in lives))
        for live in lives:
            running.instances.pop(live.id, None)

    async def edit(self, wish: Deployment, *, force: bool = False) -> Deployment:
        """Change a deployment: a stopped one is checked and kept, a running one rolls to it."""
        if not wish.stopped:
            return await self.deploy(wish, force=force)
        async with self._lock:
            await self._setup(self.library.get(wish.model), wish)
            return self.store.put_deployment(wish)

    async def reload(self, name: str, *, force: bool = False) -> Deployment:
        """Roll a running deployment, so that its engines start again with the model's settings."""
        dep = self.store.deployment(name)
        if dep is None or name not in self.running:
            raise ModelNotLoaded(name)
        return await self.deploy(dep, force=force, roll=True)

    async def stop(self, name: str, *, force: bool = False) -> Deployment:
        """Stop a deployment's instances and keep the deployment, for a start."""
        self.library.get(name)
        async with self._lock:
            dep = self.store.deployment(name)
            if dep is None:
                raise NotFound(f"{name!r} has no deployment", hint="`modelyard deployments ls` lists them")
            await self._take_down(name, force)
            self._held_no_more(name)
            dep = replace(dep, stopped=True, jit=False)
            return self.store.put_deployment(dep)

    async def _take_down(self, name: str, force: bool) -> None:
        """Drain and stop a deployment's instances and forget them; the deployment stays."""
        running = self.running.get(name)
        if running is not None:
            await self._drain_leaving({name: list(running.instances.values())}, force)
            await self._stop_model(name, forget=False)
            for live in running.instances.values():
                self.store.delete_instance(live.id)
            self.running.pop(name, None)
            self.queue(name).fail(ModelNotLoaded(name))

    async def start_deployment(self, name: str, *, force: bool = False) -> Deployment:
        """Start a stopped deployment as it was kept."""
        self.library.get(name)
        dep = self.store.deployment(name)
        if dep is None:
            raise NotFound(f"{name!r} has no deployment", hint=f"`modelyard deploy {name}` makes one")
        return await self.deploy(replace(dep, stopped=False), force=force)

    async def recreate(self, instance_id: int, *, force: bool = False) -> int:
        """Delete an instance: a new one takes its place (it serves before the old one stops).
        Returns the new one's id."""
        async with self._lock:
            for running in self.running.values():
                old = running.instances.get(instance_id)
                if old is not None:
                    model = self.library.get(running.deployment.model)
                    return (await self._replace(running, model, old, force)).id
        raise NotFound(f"no instance {instance_id}", hint="`modelyard ps` lists the instances")

    async def check(self, wish: Deployment, model: Model) -> Fits:
        """Whether ``wish`` (of ``model``, its settings as given) would run now, and where: the
        checks a deploy makes first (backend, engine, settings) and the scheduler's own placement,
        beside what runs (its own instances counted as replaced). Nothing starts or is saved;
        what no worker could run is refused as a deploy would refuse it."""
        setup = await self._setup(model, wish)
        chosen = model.adapter(wish.adapter) if wish.adapter else None
        nodes = await self.nodes(files_of(model))
        running = self.running.get(model.name)
        held = self._held(set(running.instances) if running is not None else set())
        args = (setup.backend, model, setup.options, chosen)
        spots, short = await self.offload(
            placement.place_some, *args, wish.replicas, nodes, scheduling=wish.scheduling, held=held
        )
        workers = await self.offload(
            placement.where_it_fits, *args, nodes, scheduling=wish.scheduling, held=held
        )
        reason = short.message if short is not None else None
        return Fits(model.name, setup.backend.name, wish.replicas, len(spots), reason, workers)

    async def drain(self, worker: str) -> Drained:
        """Take ``worker`` out for maintenance: nothing new is placed there, and each instance
        there is replaced elsewhere, the new one serving before the old one drains (its requests
        finish) and stops. What fits nowhere else stays, with why; `undrain` brings it back."""
        self._mark(worker, drained=True, known={n.id for n in await self.nodes()})
        moved: list[Moved] = []
        stayed: list[Stayed] = []
        async with self._lock:
            for running in list(self.running.values()):
                name = running.deployment.model
                there = [live for live in running.instances.values() if live.on(worker)]
                for old in sorted(there, key=lambda live: live.id):
                    try:
                        new = await self._replace(running, self.library.get(name), old, False, keep_old=True)
                    except ModelyardError as e:
                        stayed.append(Stayed(name, old.id, e.message))
                        continue
                    assert new.placement is not None
                    moved.append(Moved(name, old.id, new.id, new.placement.node))
        log.info("worker %s drained: %d instance(s) moved, %d stayed", worker, len(moved), len(stayed))
        return Drained(worker, moved, stayed)

    async def undrain(self, worker: str) -> None:
        """Bring a drained worker back: new instances may go there again (none move back)."""
        self._mark(worker, drained=False, known={n.id for n in await self.nodes()})

    def _mark(self, worker: str, *, drained: bool, known: set[str]) -> None:
        notes = self.store.worker_notes()
        if worker not in known and worker not in notes:
            raise NotFound(f"no worker {worker!r}", hint="`modelyard workers` lists them")
        self.store.put_worker_note(replace(notes.get(worker, WorkerNote(worker)), drained=drained))

    def _future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    async def _fit(
        self,
        backend: AnyBackend,
        model: Model,
        options: BaseModel,
        adapter: Any,
        new: int,
        leaving: dict[str, list[Live]],
        force: bool,
        scheduling: Scheduling,
        *,
        wait: bool = False,
    ) -> tuple[list[Spot], bool, WontFit | None]:
        """Where the new instances go, whether what leaves must stop first to make room, and why
        the others fit nowhere yet: with ``wait`` (a cluster, which a worker may join) those
        wait; without, WontFit unless all fit."""
        nodes = await self.nodes(files_of(model))
        if new <= 0:
            return [], bool(leaving), None
        gone = {live.id for lives in leaving.values() for live in lives}
        held = self._held(gone)

        def place(without: set[int], freed: dict[str, int]) -> tuple[list[Spot], WontFit | None]:
            kept = [h for h in held if h.instance not in without]
            return placement.place_some(
                backend, model, options, adapter, new, nodes, scheduling=scheduling, held=kept, freed=freed
            )

        spots, short = await self.offload(place, set(), {})
        if short is None:  # it fits beside what runs: what leaves stops once the new one serves
            return spots, False, None
        if force:  # past the estimate: on the first node, after what leaves has made room
            gpus = tuple(g.index for g in nodes[0].gpus)
            return [Spot(Placement(nodes[0].id, gpus), ()) for _ in range(new)], bool(leaving), None
        if leaving:
            freed: dict[str, int] = {}
            for lives in leaving.values():
                for live in lives:
                    if live.placement is not None:
                        node = live.placement.node
                        freed[node] = freed.get(node, 0) + (await self.usage(live.id)).memory
            more, still = await self.offload(place, gone, freed)
            if still is None or (wait and len(more) > len(spots)):
                return more, True, still
            if not wait:
                raise still
        if not wait:
            raise short
        return spots, False, short

    async def nodes(self, paths: Sequence[str] = ()) -> list[Node]:
        """The executor's nodes, with the labels people gave them over those they joined with."""
        found = await self.executor.nodes(paths)
        notes = self.store.worker_notes()
        return [
            replace(n, labels={**n.labels, **notes[n.id].labels}, drained=notes[n.id].drained)
            if n.id in notes
            else n
            for n in found
        ]

    def _held(self, without: set[int]) -> list[Held]:
        """The instances that hold memory, as the scheduler sees them."""
        return [
            Held(r.deployment.model, live.id, live.claims, running=live.state == State.RUNNING)
            for r in self.running.values()
            for live in r.instances.values()
            if live.id not in without and live.claims
        ]

    async def relocate(self, live: Live) -> None:
        """Place an instance that has no place (it was pending, or its node is gone): sets its
        placement and claims; WontFit while no node takes it."""
        running = self.running.get(live.model)
        if running is None:
            raise ModelNotLoaded(live.model)
        model = self.library.get(live.model)
        adapter = model.adapter(live.adapter) if live.adapter else None
        setup, scheduling = live.setup, running.deployment.scheduling
        async with self._placing:
            nodes = await self.nodes(files_of(model))

            def place() -> list[Spot]:
                held = self._held({live.id})
                return placement.place(
                    setup.backend, model, setup.options, adapter, 1, nodes, scheduling=scheduling, held=held
                )

            (spot,) = await self.offload(place)
            live.placement, live.claims = spot.placement, spot.claims
        log.info("%s: instance %s placed on %s", live.model, live.id, spot.placement.node)

    async def _drain_leaving(self, leaving: dict[str, list[Live]], force: bool) -> None:
        """Hand the leaving instances nothing new and wait for their requests, up to the switch
        timeout; a model still busy then stops the load (its clients are not cut off)."""
        timeout = 0 if force else self.settings.switch_timeout
        for name, lives in leaving.items():
            ids = [live.id for live in lives]
            queue = self.queue(name)
            queue.drain(ids)
            if not await queue.settled(ids, timeout) and not force:
                for other, others in leaving.items():
                    self.queue(other).drain([live.id for live in others], on=False)
                raise LoadRefused(
                    f"{name!r} is still answering {queue.in_flight_of(ids)} request(s)",
                    hint=f"try again when they finish, or `modelyard unload {name} --force`",
                )

    async def _stop_leaving(self, change: Change) -> None:
        for name, lives in change.leaving.items():
            if name == change.name:
                await asyncio.gather(*(self._stop_instance(name, live, remove=True) for live in lives))
                for live in lives:
                    change.running.instances.pop(live.id, None)
            else:
                await self._displace(name)

    async def _displace(self, name: str) -> None:
        """Unload ``name`` for another model. Requests that still wait for it (on demand) keep
        waiting, for its next turn."""
        running = self.running.get(name)
        if running is None:  # another load displaced it already
            return
        self.turns.swaps += 1
        await self._stop_model(name, keep_waiters=True)
        oldest = self.queue(name).oldest()  # (requests may have come while it stopped)
        if not (running.deployment.jit or self.library.get(name).autoload):
            self.queue(name).fail(ModelNotLoaded(name))  # loaded by hand: its requests are told
        elif oldest is not None:
            self._jit_load(name, running.deployment.adapter, *oldest)

    async def _undo(self, change: Change) -> None:
        """A load whose new instances all failed: stop them. What it was to replace serves on;
        what stopped first to make room is loaded again."""
        name = change.name
        new = [*change.starting, *change.waiting]
        await asyncio.gather(*(self._stop_instance(name, live, remove=True) for live in new))
        for live in new:
            change.running.instances.pop(live.id, None)
        previous = change.before.get(name)
        if previous is not None and not change.stop_first:  # a switch of LoRA: the old one stays
            self.running[name] = previous
            self.store.put_deployment(previous.deployment)
        elif change.running.instances:  # more replicas were asked for: the ones there stay
            dep = change.running.deployment
            dep.replicas = len(change.running.instances)
            self.store.put_deployment(dep)
        elif self.running.get(name) is change.running:
            self.running.pop(name, None)
            if change.kept is not None:  # a recorded wish stays: still stopped, or held back
                self.store.put_deployment(change.kept)
            else:
                self.store.delete_deployment(name)
        for other, lives in change.leaving.items():
            if not change.stop_first:
                self.queue(other).drain([live.id for live in lives], on=False)
            elif other in change.before:
                log.warning("%s did not load; loading %s again", name, other)
                self.spawn(self._restore(change.before[other].deployment, force=True))  # it ran

    async def unload(self, name: str, *, force: bool = False) -> None:
        """Unload a model (delete its deployment): wait for its requests (unless ``force``), stop
        its processes, forget the deployment."""
        self.library.get(name)
        async with self._lock:
            running = self.running.get(name)
            if running is None:
                if self.store.deployment(name) is None:
                    raise ModelNotLoaded(name)
                self.store.delete_deployment(name)  # a stopped or held-back deployment: forgotten
                self._held_no_more(name)
                return
            await self._drain_leaving({name: list(running.instances.values())}, force)
            await self._stop_model(name)
            self._held_no_more(name)

    async def _stop_model(self, name: str, *, forget: bool = True, keep_waiters: bool = False) -> None:
        """Stop all instances of ``name``; forget the deployment unless ``forget`` is False. The
        requests waiting for it are told it is not loaded, unless ``keep_waiters``."""
        running = self.running.get(name)
        if running is not None:
            await asyncio.gather(
                *(self._stop_instance(name, live) for live in list(running.instances.values()))
            )
        if forget:
            self.running.pop(name, None)
            self.store.delete_deployment(name)
            if not keep_waiters:
                self.queue(name).fail(ModelNotLoaded(name))

    async def _stop_instance(self, name: str, live: Live, *, remove: bool = False) -> None:
        if live.task and not live.task.done():
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live.task
        queue = self.queues.get(name)
        if queue is not None:
            queue.drop_slot(live.id)
        if live.engine is not None:
            await live.engine.stop(self.settings.stop_grace)
        live.state = State.STOPPED
        if not live.ready.done():
            live.ready.set_exception(EngineError(f"instance {live.id} of {name!r} was stopped"))
            live.ready.exception()  # retrieved: no warning when nobody waits
        self.store.update_instance(live.id, state=State.STOPPED)
        if remove:
            self.store.delete_instance(live.id)

    # -- what the watching and the gateway report ---------------------------------------------

    def changing(self) -> bool:
        """Whether a load, an unload or another change is under way (they take one lock)."""
        return self._lock.locked()

    async def scale(self, name: str, replicas: int) -> None:
        """Give a running deployment ``replicas`` instances (its autoscaling's choice): new ones
        start where the placement allows; the newest leave first, drained."""
        running = self.running.get(name)
        if running is None or running.deployment.replicas == replicas:
            return
        await self.deploy(replace(running.deployment, replicas=replicas))

    async def evict(self, dep: Deployment, reason: str) -> None:
        """Stop a deployment's instances and keep it, held back (evicted): it loads again later."""
        async with self._lock:
            await self._take_down(dep.model, force=False)
        self._hold_back(dep, reason, evicted=True)

    def unreachable(self, name: str, slot: Slot) -> None:
        """The gateway could not connect to an instance: it leaves the rotation at once, and
        comes back only if its health check answers; else it is stopped and restarts."""
        queue = self.queues.get(name)
        if queue is None or queue.slots.get(slot.instance_id) is not slot:
            return
        queue.drop_slot(slot.instance_id)
        live = self.live(slot.instance_id)
        if live is not None and live.engine is not None:
            self.spawn(self.supervisor.recheck(live, slot))

    # -- requests ------------------------------------------------------------------------------

    async def acquire(
        self,
        model: Model,
        adapter: str | None,
        disconnected: Callable[[], Awaitable[bool]],
        *,
        load: bool = False,
        by: str | None = None,
        ask: Ask | None = None,
    ) -> tuple[Queue, Slot]:
        """A slot on a ready instance of ``model`` (+ ``adapter``), loading it first when its
        autoload is on (or ``load`` asks for it: a load ``by`` this key); waits in the model's
        bounded queue. ``ask``: who asks, at which tier and priority, with which prompt (see
        queue.py)."""
        name = model.name
        if adapter is not None and model.adapter(adapter) is None:
            raise AdapterNotFound(name, adapter)
        running = self.running.get(name)
        if running is None or running.deployment.adapter != adapter:
            if not (model.autoload or load):
                if running is not None:
                    loaded = running.deployment.adapter
                    raise LoadRefused(
                        f"{name!r} is loaded {'with adapter ' + repr(loaded) if loaded else 'without an adapter'}",
                        hint=f"load it with the one you want: `modelyard load {name}"
                        + (f" --lora {adapter}`" if adapter else "`"),
                    )
                raise ModelNotLoaded(name)
            self._jit_load(name, adapter, by)
        queue = self.queue(name)
        slot = await queue.acquire(adapter, disconnected=disconnected, ask=ask)
        return queue, slot

    def _jit_load(self, name: str, adapter: str | None, by: str | None, since: float | None = None) -> None:
        """Load ``name`` for the requests that wait for it, in its turn (turns.py); ``since``:
        when the oldest of them came (now, unless given)."""
        queue = self.queue(name)
        queue.fail(None, adapter)  # a load is coming (what failed before is past)
        task = self._jit.get(name)
        if task is not None and not task.done():
            return

        async def load() -> None:
            try:
                await self._turn(name, adapter, self.clock.now() if since is None else since)
                try:
                    await self.load(name, adapter=adapter, jit=True, by=by)
                finally:
                    self.turns.loading.discard(name)
            except ModelyardError as e:
                queue.fail(e, adapter)
            except Exception as e:  # a bug: the waiters still get an answer
                log.exception("loading %s on demand", name)
                queue.fail(EngineError(f"{name!r} could not be loaded: {e}"), adapter)
            else:  # displaced as its load ended, with requests that came meanwhile: once more
                if name not in self.running and (oldest := queue.oldest()) is not None:
                    asyncio.get_running_loop().call_soon(self._jit_load, name, adapter, *oldest)

        self._jit[name] = asyncio.create_task(load())

    def _rivals(self, name: str, category: str, adapter: str | None) -> list[str]:
        """The loaded models a load of ``name`` would unload, and the models waiting for their
        turn whose loads would unload it or that it would unload."""
        loaded = [Loaded(n, r.category, r.deployment.adapter) for n, r in self.running.items() if n != name]
        waiting = [Loaded(n, kind, None) for n, (_, kind) in self.turns.waiting.items() if n != name]
        return self.policy.displaced(name, category, [adapter] if adapter else [], loaded + waiting)

    async def _warm(self, name: str) -> None:
        await self.offload(prefetch, files_of(self.library.get(name)))

    async def _turn(self, name: str, adapter: str | None, since: float) -> None:
        """Until ``name`` may load: once no model it would unload is loading (its requests wait
        for it), nor busy (its turn has ended) unless ``name``'s oldest request has been passed
        over for the swap bound; and never before a rival that waits longer. With no bound,
        each load goes as soon as no rival is loading (first come first served)."""
        turns = self.turns
        category = self.library.get(name).category  # read once: the loop looks every LOOK seconds
        turns.waiting[name] = (since, category)
        try:
            warmed = False
            while True:
                rivals = self._rivals(name, category, adapter)
                loading = [r for r in rivals if r in turns.loading]
                busy = [r for r in rivals if r in self.running and turns.busy(self.queue(r))]
                due = turns.passed_over(name) >= turns.bound
                if not loading and (not turns.bound or (turns.first(name, rivals) and (not busy or due))):
                    turns.loading.add(name)
                    return
                if not warmed:  # its engine will start from RAM
                    warmed = True
                    self.spawn(self._warm(name))
                await self.clock.sleep(LOOK)
        finally:
            turns.waiting.pop(name, None)
