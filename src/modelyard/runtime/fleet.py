"""The fleet: what the runtime runs now (the deployments it serves with their instances, each
model's queue, restarts, keep-alives, deployments held back) and every read of it: what the API
shows (``serving()``, deployments, instances, logs), what admission asks (contexts, replicas)
and what the watching looks at. The Runtime (runtime.py) is the fleet with the changes to it:
loads, deploys, rolls, unloads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from modelyard.backends.base import AnyBackend
from modelyard.catalog.records import Deployment, Instance, Model, WorkerNote
from modelyard.config import Settings
from modelyard.library import Library
from modelyard.runtime.clock import Clock
from modelyard.runtime.comeback import HeldBack
from modelyard.runtime.executor import Engine, Executor, LogRef, Usage
from modelyard.runtime.queue import Queue, Tier
from modelyard.runtime.routing import Routing
from modelyard.runtime.serving import Serving
from modelyard.runtime.supervisor import Live, Setup


@dataclass
class Running:
    """A deployment the runtime serves: how its new instances start, and its instances."""

    deployment: Deployment
    setup: Setup
    category: str
    instances: dict[int, Live] = field(default_factory=dict)


class Fleet:
    """What runs now, and every read of it; changed by the Runtime only."""

    def __init__(self, settings: Settings, library: Library, executor: Executor, clock: Clock) -> None:
        self.settings = settings
        self.library = library
        self.store = library.store
        self.executor = executor
        self.clock = clock
        self.running: dict[str, Running] = {}
        self.queues: dict[str, Queue] = {}
        self.restarts: dict[str, int] = {}  # model -> restarts of its instances since the server started
        self.keep_alive: dict[str, float | None] = {}  # model -> its own idle time (see keep)
        self.held_back: dict[str, HeldBack] = {}  # deployments wished for with no instances now

    def is_loaded(self, name: str) -> bool:
        return name in self.running

    def queue(self, name: str) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = Queue(
                name=name,
                max_waiting=self.settings.queue_size,
                timeout=self.settings.queue_timeout,
                limits=self._limits(),
                clock=self.clock,
                idle=self.settings.batch_idle,
                routing=Routing(policy=self.settings.routing),
            )
        return queue

    def _limits(self) -> dict[Tier, float]:
        """The tiers' own time limits in the queues, where they are set."""
        s = self.settings
        given = {Tier.FLEX: s.queue_timeout_flex, Tier.PRIORITY: s.queue_timeout_priority}
        return {tier: seconds for tier, seconds in given.items() if seconds is not None}

    def model(self, name: str) -> Model:
        return self.library.get(name)

    def record(self, instance_id: int, **fields: Any) -> None:
        self.store.update_instance(instance_id, **fields)

    def restarted(self, name: str) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1

    def serving(self) -> list[Serving]:
        """What it serves now, and the models whose queues hold requests, by name."""
        out = []
        for name in sorted({*self.running, *self.queues}):
            running, queue = self.running.get(name), self.queues.get(name)
            lives = running.instances.values() if running is not None else ()
            model = running.deployment if running is not None else None
            out.append(
                Serving(
                    model=name,
                    adapter=model.adapter if model is not None else None,
                    backend=running.setup.backend.name if running is not None else None,
                    instances=dict(Counter(str(live.state) for live in lives)),
                    waiting=queue.waiting if queue else 0,
                    in_flight=queue.in_flight if queue else 0,
                    prefix_hits=queue.routing.hits if queue else 0,
                    prefix_misses=dict(queue.routing.misses) if queue else {},
                    prefix_saved=round(queue.routing.saved) if queue else 0,
                    idle=self.clock.now() - queue.last_used if queue else 0.0,
                    kept_for=self.kept_for(name),
                    context=self._context(running) if running is not None else None,
                    replicas=model.replicas if model is not None else 0,
                    autoscale=model.autoscale if model is not None else None,
                    places=sum(s.capacity for s in queue.slots.values()) if queue else 0,
                    waited=self.clock.now() - oldest[1] if queue and (oldest := queue.oldest()) else 0.0,
                )
            )
        return out

    def deployment(self, name: str) -> Deployment | None:
        """The deployment kept for ``name``, running or not."""
        return self.store.deployment(name)

    def deployments(self) -> list[Deployment]:
        return self.store.deployments()

    def worker_notes(self) -> dict[str, WorkerNote]:
        """What people said of the cluster's workers (labels, a note), by name."""
        return self.store.worker_notes()

    def note_worker(self, note: WorkerNote) -> None:
        self.store.put_worker_note(note)

    def live(self, instance_id: int) -> Live | None:
        for r in self.running.values():
            if instance_id in r.instances:
                return r.instances[instance_id]
        return None

    def engine(self, instance_id: int) -> Engine | None:
        live = self.live(instance_id)
        return live.engine if live else None

    async def usage(self, instance_id: int) -> Usage:
        engine = self.engine(instance_id)
        if engine is None or engine.returncode() is not None:
            return Usage(memory=0, cpu_percent=0.0)
        return await engine.usage()

    def instances(self) -> list[Instance]:
        return self.store.instances()

    def context_of(self, model: Model, backend: AnyBackend) -> int | None:
        """The context a request to ``model`` gets (a slot's share, where ``backend``'s slots
        split it): the loaded deployment's, else its settings' (n_ctx 0: the model's own)."""
        running = self.running.get(model.name)
        if running is not None:
            return self._context(running, model.context_length)
        saved = model.settings.options if model.settings else {}
        n_ctx = saved.get("n_ctx") or model.context_length
        slots = saved.get("parallel", 1) if backend.slots_share_context else 1
        return n_ctx // slots if n_ctx else None

    @staticmethod
    def _context(running: Running, own: int | None = None) -> int | None:
        """The context one request to ``running`` gets (``own``: the model's, where the options
        give none)."""
        setup = running.setup
        n_ctx = getattr(setup.options, "n_ctx", None) or own
        slots = getattr(setup.options, "parallel", 1) if setup.backend.slots_share_context else 1
        return n_ctx // slots if n_ctx else None

    def adapter_of(self, instance_id: int) -> str | None:
        live = self.live(instance_id)
        return live.adapter if live else None

    def log_ref(self, instance_id: int, start: int | None = None) -> LogRef | None:
        """The log of a start of an instance (the latest by default)."""
        for inst in self.store.instances():
            if inst.id == instance_id:
                return LogRef(inst.node or "local", instance_id, start or max(inst.starts, 1))
        return None

    async def read_log(self, ref: LogRef, offset: int = 0) -> bytes | None:
        return await self.executor.read_log(ref, offset)

    def keep(self, name: str, seconds: float | None) -> None:
        """Keep ``name`` loaded ``seconds`` after its last request (0: unload it once idle; None:
        until it is unloaded), instead of MODELYARD_IDLE_UNLOAD (the Ollama API's keep_alive)."""
        self.keep_alive[name] = seconds

    def kept_for(self, name: str) -> float | None:
        """Seconds ``name`` stays loaded after its last request; None: until it is unloaded."""
        if name in self.keep_alive:
            return self.keep_alive[name]
        return self.settings.idle_unload or None

    def wish_state(self, dep: Deployment) -> tuple[str, str | None, float | None]:
        """Where a deployment stands: running, starting, stopped, or held back (retrying,
        evicted, failed) with the reason, and the seconds until its next try."""
        if dep.model in self.running:
            return "running", None, None
        if dep.stopped:
            return "stopped", None, None
        held = self.held_back.get(dep.model)
        if held is None:
            return "starting", None, None
        retry_in = max(0.0, held.next_try - self.clock.now()) if held.next_try is not None else None
        return held.state.value, held.reason, retry_in

    def placed(self, name: str) -> bool:
        """Whether an instance of ``name`` has a place (it serves, starts or restarts there)."""
        running = self.running.get(name)
        return running is not None and any(live.placement is not None for live in running.instances.values())

    def replicated(self, name: str) -> bool:
        """Whether ``name`` has more than one instance to choose from."""
        queue = self.queues.get(name)
        return queue is not None and len(queue.slots) > 1
