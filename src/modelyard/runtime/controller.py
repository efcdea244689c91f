"""The runtime: turns deployments into running instances and keeps them running.

It runs in the server's event loop. Loads and unloads are serialised by one lock; the load rules
decide what a load displaces; a displaced or unloaded model is drained first (its requests finish,
up to a timeout) so nothing is cut off under a client's feet. A monitor notices instances that
died and restarts them with exponential backoff, and unloads models idle past the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import psutil

from modelyard.backends import llama_cpp, python
from modelyard.backends.base import EngineSpec
from modelyard.backends.environments import Interpreter, interpreter_for
from modelyard.catalog.records import Deployment, Instance, Model
from modelyard.config import Settings
from modelyard.errors import (
    AdapterNotFound,
    EngineError,
    LoadRefused,
    ModelNotLoaded,
    ModelyardError,
    Unsupported,
    WontFit,
)
from modelyard.estimate import GiB, config_of, fit, fit_folder
from modelyard.library import Library
from modelyard.library.settings import backend_of, effective
from modelyard.monitor.gpus import nvidia
from modelyard.runtime.executor import EngineProcess, Executor, LaunchSpec, LocalExecutor, tail
from modelyard.runtime.gate import Gate, Slot
from modelyard.runtime.rules import Loaded, LoadPolicy

log = logging.getLogger(__name__)


class State(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    ERROR = "error"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass
class Live:
    """An instance as the runtime holds it in memory."""

    id: int
    model: str
    state: State = State.PENDING
    process: EngineProcess | None = None
    starts: int = 0
    restarts: int = 0
    task: asyncio.Task[None] | None = None
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class Running:
    """A deployment the runtime is serving."""

    deployment: Deployment
    category: str
    instances: dict[int, Live] = field(default_factory=dict)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        library: Library,
        *,
        executor: Executor | None = None,
        policy: LoadPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.library = library
        self.store = library.store
        self.executor: Executor = executor or LocalExecutor()
        self.policy = policy or LoadPolicy.from_settings(
            settings.one_per_category, settings.exclusive, settings.max_loras
        )
        self.running: dict[str, Running] = {}
        self.gates: dict[str, Gate] = {}
        self.load_errors: dict[str, BaseException] = {}
        self._lock = asyncio.Lock()
        self._jit: dict[str, asyncio.Task[None]] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=5.0)
        self._tasks: set[asyncio.Task[None]] = set()
        library.is_loaded = self.is_loaded

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Clean up after an earlier server, bring back the deployments, start the monitor."""
        for inst in self.store.instances():
            if inst.state != State.STOPPED and inst.pid:
                await asyncio.to_thread(_kill_orphan, inst.pid)
            self.store.delete_instance(inst.id)
        for dep in self.store.deployments():
            if dep.jit or dep.replicas == 0:
                self.store.delete_deployment(dep.model)
            else:
                self._spawn(self._restore(dep))
        self._monitor = asyncio.create_task(self._watch())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background task, referenced until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restore(self, dep: Deployment) -> None:
        try:
            await self.load(dep.model, adapter=dep.adapter, replicas=dep.replicas)
        except ModelyardError as e:
            log.warning("could not load %s again: %s", dep.model, e)

    async def close(self) -> None:
        """Stop every engine process (the deployments stay: they load again next start)."""
        if self._monitor:
            self._monitor.cancel()
        for task in self._jit.values():
            task.cancel()
        await asyncio.gather(*(self._stop_instances(name, keep=True) for name in list(self.running)))
        await self._http.aclose()

    # -- queries -------------------------------------------------------------------------------

    def is_loaded(self, name: str) -> bool:
        return name in self.running

    def gate(self, name: str) -> Gate:
        gate = self.gates.get(name)
        if gate is None:
            gate = self.gates[name] = Gate(name=name, max_waiting=self.settings.queue_size)
        return gate

    def memory(self, instance_id: int) -> int:
        process = self._process(instance_id)
        return process.memory() if process else 0

    def cpu_percent(self, instance_id: int) -> float:
        process = self._process(instance_id)
        return process.cpu_percent() if process else 0.0

    def _process(self, instance_id: int) -> EngineProcess | None:
        for r in self.running.values():
            live = r.instances.get(instance_id)
            if live and live.process:
                return live.process
        return None

    def instances(self) -> list[Instance]:
        return self.store.instances()

    def log_path(self, instance_id: int, start: int | None = None) -> tuple[str, int] | None:
        """(log file, start number): the given start's, or the latest."""
        for inst in self.store.instances():
            if inst.id == instance_id:
                n = start or inst.starts
                return str(self.settings.logs_dir / f"{instance_id}.{n}.log"), n
        return None

    # -- load and unload -----------------------------------------------------------------------

    async def load(
        self,
        name: str,
        *,
        adapter: str | None = None,
        replicas: int = 1,
        jit: bool = False,
        force: bool = False,
    ) -> Deployment:
        """Load ``name`` (with ``adapter``) as ``replicas`` instances, after the load rules, and
        wait until they serve (an error if none does)."""
        async with self._lock:
            dep, to_start = await self._plan(name, adapter, replicas, jit, force)
        for live in to_start:
            live.task = asyncio.create_task(self._run(live))
        if to_start:
            results = await asyncio.gather(*(live.ready for live in to_start), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures and len(failures) == len(to_start):
                async with self._lock:
                    await self._stop_instances(name)
                raise failures[0]
        return dep

    async def _plan(
        self, name: str, adapter: str | None, replicas: int, jit: bool, force: bool = False
    ) -> tuple[Deployment, list[Live]]:
        model = self.library.get(name)
        if adapter is not None and model.adapter(adapter) is None:
            raise AdapterNotFound(name, adapter)
        backend = backend_of(model)
        if backend in python.PYTHON_BACKENDS:
            python.task_of(model)  # a category the runner does not serve fails now
            self._interpreter(backend)  # a missing environment fails now, with the command to run
        elif backend != "llama.cpp":
            raise Unsupported(f"serving {backend} models is not available yet")
        current = self.running.get(name)
        if current and current.deployment.adapter == adapter and len(current.instances) == replicas:
            return current.deployment, []  # the same base + LoRA: reuse, no reload
        loaded = [Loaded(n, r.category, r.deployment.adapter) for n, r in self.running.items()]
        displaced = self.policy.displaced(name, model.category, [adapter] if adapter else [], loaded)
        if not force:
            switching = current is not None and current.deployment.adapter != adapter
            kept = len(current.instances) if current and not switching else 0
            freed = [*displaced, name] if switching else displaced
            await asyncio.to_thread(self._check_fit, model, adapter, replicas - kept, freed)
        for other in displaced:
            await self._drain(other)
            await self._stop_instances(other)
        if current and current.deployment.adapter != adapter:
            await self._drain(name)
            await self._stop_instances(name)
            current = None
        options = effective(model)
        self.load_errors.pop(name, None)
        dep = self.store.put_deployment(
            Deployment(
                model=name, backend=backend, replicas=replicas, options=options, adapter=adapter, jit=jit
            )
        )
        running = current or Running(deployment=dep, category=model.category)
        running.deployment = dep
        self.running[name] = running
        to_start: list[Live] = []
        while len(running.instances) > replicas:  # scale down: newest first
            victim = running.instances[max(running.instances)]
            await self._stop_one(name, victim, remove=True)
        while len(running.instances) < replicas:
            inst = self.store.add_instance(name)
            live = Live(id=inst.id, model=name)
            running.instances[inst.id] = live
            to_start.append(live)
        self.gate(name)
        return dep, to_start

    def _interpreter(self, backend: str) -> Interpreter:
        return interpreter_for(
            backend, self.settings.envs_dir, managed_only=self.settings.python_envs == "managed"
        )

    def _check_fit(self, model: Model, adapter: str | None, new_replicas: int, displaced: list[str]) -> None:
        """Refuse a load that will not fit in the memory free now (plus what it displaces)."""
        if new_replicas <= 0:
            return
        freed = sum(
            live.process.memory()
            for n in displaced
            for live in self.running[n].instances.values()
            if live.process
        )
        free = psutil.virtual_memory().available + freed
        free_vram = [g.memory_total - (g.memory_used or 0) for g in nvidia() if g.memory_total]
        per_ram, per_vram = free // new_replicas, [v // new_replicas for v in free_vram]
        if model.format == "gguf":
            runtime, _ = llama_cpp.find_runtime(self.settings.llama_server, self.settings.bin_dir)
            cfg = config_of(model, effective(model), runtime, n_gpus=len(free_vram), adapter=adapter)
            report = fit(model, cfg, per_ram, per_vram)
        elif model.format == "safetensors" and Path(model.path).is_dir():
            report = fit_folder(model, effective(model), per_ram, per_vram)
        else:
            return  # no estimate for this format: the engine's own error will say
        if report.fits:
            return
        e = report.estimate
        options = []
        if report.max_ctx and report.max_ctx < e.n_ctx:
            options.append(f"a smaller context (n_ctx {report.max_ctx} fits)")
        layers = getattr(e, "n_gpu_layers", None)
        if report.max_gpu_layers is not None and layers is not None and report.max_gpu_layers < layers:
            options.append(f"fewer GPU layers (n_gpu_layers {report.max_gpu_layers} fits)")
        options += ["a smaller quantization", "`modelyard load --force` to try anyway"]
        needs = [
            f"{e.ram.total * new_replicas / GiB:.2f} GiB of RAM (weights {e.ram.weights / GiB:.2f}, "
            f"KV cache {e.ram.kv_cache / GiB:.2f}, compute and overhead "
            f"{(e.ram.compute + e.ram.overhead) / GiB:.2f}) with {free / GiB:.2f} GiB free"
        ]
        needs += [
            f"GPU {i}: {v.total * new_replicas / GiB:.2f} GiB with {f / GiB:.2f} GiB free"
            for i, (v, f) in enumerate(zip(e.vram, free_vram, strict=False))
        ]
        raise WontFit(f"{model.name!r} needs " + "; ".join(needs), hint="try " + ", or ".join(options))

    async def unload(self, name: str, *, force: bool = False) -> None:
        """Unload a model: wait for its requests (unless ``force``), stop its processes."""
        self.library.get(name)
        async with self._lock:
            if name not in self.running:
                raise ModelNotLoaded(name)
            await self._drain(name, timeout=0 if force else self.settings.switch_timeout, force=force)
            await self._stop_instances(name)

    async def _drain(self, name: str, *, timeout: float | None = None, force: bool = False) -> None:
        """Stop handing out the model's slots and wait for its requests in flight."""
        gate = self.gates.get(name)
        if gate is None:
            return
        limit = self.settings.switch_timeout if timeout is None else timeout
        gate.draining = True
        deadline = time.monotonic() + limit
        while gate.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if gate.in_flight and not force:
            gate.draining = False
            gate.notify()
            raise LoadRefused(
                f"{name!r} is still answering {gate.in_flight} request(s)",
                hint=f"try again when they finish, or `modelyard unload {name} --force`",
            )

    async def _stop_instances(self, name: str, *, keep: bool = False) -> None:
        """Stop all instances of ``name``; forget the deployment unless ``keep``."""
        running = self.running.get(name)
        if running is not None:
            await asyncio.gather(*(self._stop_one(name, live) for live in list(running.instances.values())))
        if not keep:
            self.running.pop(name, None)
            self.store.delete_deployment(name)
            gate = self.gates.get(name)
            if gate is not None:
                gate.draining = False
                gate.notify()

    async def _stop_one(self, name: str, live: Live, *, remove: bool = False) -> None:
        if live.task and not live.task.done():
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live.task
        gate = self.gates.get(name)
        if gate is not None:
            gate.drop_slot(live.id)
        if live.process is not None:
            await asyncio.to_thread(live.process.stop, self.settings.stop_grace)
        live.state = State.STOPPED
        if not live.ready.done():
            live.ready.set_exception(EngineError(f"instance {live.id} of {name!r} was stopped"))
            live.ready.exception()  # retrieved: no warning when nobody waits
        self.store.update_instance(live.id, state=State.STOPPED, pid=None)
        if remove:
            running = self.running.get(name)
            if running:
                running.instances.pop(live.id, None)
            self.store.delete_instance(live.id)

    # -- one instance --------------------------------------------------------------------------

    async def _run(self, live: Live) -> None:
        """Start the instance; on failure record it (the monitor decides about restarts)."""
        try:
            await self._start(live)
        except asyncio.CancelledError:
            raise
        except ModelyardError as e:
            live.state = State.ERROR
            self.store.update_instance(live.id, state=State.ERROR, error=str(e), note=e.message)
            if not live.ready.done():
                live.ready.set_exception(e)
            if live.restarts == 0 and live.starts <= 1:
                self.load_errors[live.model] = e
        except Exception as e:  # a bug: keep the server up, record it
            log.exception("instance %s failed to start", live.id)
            live.state = State.ERROR
            err = EngineError(f"instance {live.id} could not start: {e}")
            self.store.update_instance(live.id, state=State.ERROR, error=str(err))
            if not live.ready.done():
                live.ready.set_exception(err)

    async def _start(self, live: Live) -> None:
        running = self.running[live.model]
        dep = running.deployment
        model = self.library.get(live.model)
        host = "127.0.0.1"
        port = self.executor.free_port(host)
        if dep.backend in python.PYTHON_BACKENDS:
            interpreter = self._interpreter(dep.backend)
            outputs = self.settings.home / "outputs" / "images"
            spec = python.engine(
                interpreter, dep.backend, model, dep.options, dep.adapter, host, port, outputs
            )
        else:
            adapter = model.adapter(dep.adapter) if dep.adapter else None
            runtime, program = llama_cpp.find_runtime(self.settings.llama_server, self.settings.bin_dir)
            scratch = self.settings.home / "run"
            spec = llama_cpp.engine(runtime, program, model, dep.options, adapter, host, port, scratch)
        live.starts += 1
        log_path = self.settings.logs_dir / f"{live.id}.{live.starts}.log"
        live.state = State.STARTING
        process = self.executor.launch(
            LaunchSpec(argv=spec.argv, env=_engine_env(spec), log_path=log_path, host=host, port=port)
        )
        live.process = process
        self.store.update_instance(
            live.id, state=State.STARTING, pid=process.pid, url=process.url, starts=live.starts, error=None
        )
        await self._wait_healthy(live, process, spec)
        live.state = State.RUNNING
        self.store.update_instance(live.id, state=State.RUNNING)
        self.gate(live.model).set_slot(
            Slot(instance_id=live.id, url=process.url, capacity=spec.slots, adapter=dep.adapter)
        )
        if not live.ready.done():
            live.ready.set_result(None)

    async def _wait_healthy(self, live: Live, process: EngineProcess, spec: EngineSpec) -> None:
        deadline = time.monotonic() + self.settings.health_timeout
        url = process.url + spec.health_path
        while True:
            code = process.returncode()
            if code is not None:
                raise EngineError(
                    f"the engine of {live.model!r} exited with status {code} while starting",
                    hint=f"its log says:\n{tail(process.log_path, 15)}",
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                await asyncio.to_thread(process.stop, self.settings.stop_grace)
                raise EngineError(
                    f"the engine of {live.model!r} was not ready after {self.settings.health_timeout:g} s",
                    hint=f"its log says:\n{tail(process.log_path, 15)}",
                )
            await asyncio.sleep(0.1)

    # -- monitor: crashes, restarts, idle unload -------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                await self._check()
            except Exception:
                log.exception("monitor")

    async def _check(self) -> None:
        now = time.monotonic()
        for name, running in list(self.running.items()):
            for live in list(running.instances.values()):
                if live.state == State.RUNNING and live.process and live.process.returncode() is not None:
                    self._crashed(name, live, live.process.returncode())
                elif (
                    live.state == State.ERROR
                    and (live.task is None or live.task.done())
                    and live.ready.done()
                ):
                    self._schedule_restart(name, live, "failed to start")
            if self._idle(name, now) and not self._lock.locked():
                self._spawn(self._idle_unload(name))

    def _idle(self, name: str, now: float) -> bool:
        ttl = self.settings.idle_unload
        gate = self.gates.get(name)
        return bool(ttl and gate and not gate.in_flight and not gate.waiting and now - gate.last_used > ttl)

    def _crashed(self, name: str, live: Live, code: int | None) -> None:
        gate = self.gates.get(name)
        if gate is not None:
            gate.drop_slot(live.id)
        live.state = State.ERROR
        note = f"the engine exited with status {code}"
        log.warning("%s: instance %s: %s", name, live.id, note)
        self.store.update_instance(live.id, state=State.ERROR, error=note, pid=None, note=note)
        self._schedule_restart(name, live, note)

    def _schedule_restart(self, name: str, live: Live, why: str) -> None:
        delay = min(self.settings.restart_backoff * 2**live.restarts, self.settings.restart_backoff_max)
        live.state = State.RESTARTING
        self.store.update_instance(live.id, state=State.RESTARTING, note=f"{why}; restart in {delay:g} s")

        async def restart() -> None:
            await asyncio.sleep(delay)
            live.restarts += 1
            self.store.update_instance(live.id, restarts=live.restarts)
            await self._run(live)

        live.task = asyncio.create_task(restart())

    async def relieve_pressure(self, _sample: object = None) -> str | None:
        """Unload the least recently used model that is serving (not loading) and has no request
        in flight or waiting. Returns what it did, or None when there is none."""
        idle = []
        for name, running in self.running.items():
            gate = self.gates.get(name)
            serving = all(live.state == State.RUNNING for live in running.instances.values())
            if serving and gate is not None and not gate.in_flight and not gate.waiting:
                idle.append((gate.last_used, name))
        if not idle or self._lock.locked():
            return None
        _, name = min(idle)
        try:
            await self.unload(name)
        except ModelyardError as e:
            log.warning("could not unload %s under memory pressure: %s", name, e)
            return None
        return f"unloaded {name!r}, the least recently used idle model, to relieve memory pressure"

    async def _idle_unload(self, name: str) -> None:
        with contextlib.suppress(ModelyardError):
            log.info("unloading %s: idle for %g s", name, self.settings.idle_unload)
            await self.unload(name)

    # -- requests ------------------------------------------------------------------------------

    async def acquire(
        self, model: Model, adapter: str | None, disconnected: Callable[[], Awaitable[bool]]
    ) -> tuple[Gate, Slot]:
        """A slot on a ready instance of ``model`` (+ ``adapter``), loading it first when its
        autoload is on; waits in the model's bounded queue."""
        name = model.name
        if adapter is not None and model.adapter(adapter) is None:
            raise AdapterNotFound(name, adapter)
        running = self.running.get(name)
        matches = running is not None and running.deployment.adapter == adapter
        if not matches:
            if not model.autoload:
                if running is not None:
                    loaded = running.deployment.adapter
                    raise LoadRefused(
                        f"{name!r} is loaded {'with adapter ' + repr(loaded) if loaded else 'without an adapter'}",
                        hint=f"load it with the one you want: `modelyard load {name}"
                        + (f" --lora {adapter}`" if adapter else "`"),
                    )
                raise ModelNotLoaded(name)
            self._jit_load(name, adapter)
        gate = self.gate(name)

        def failed() -> BaseException | None:
            return self.load_errors.get(name)

        slot = await gate.acquire(adapter, disconnected=disconnected, failed=failed)
        return gate, slot

    def _jit_load(self, name: str, adapter: str | None) -> None:
        task = self._jit.get(name)
        if task is not None and not task.done():
            return
        self.load_errors.pop(name, None)

        async def load() -> None:
            try:
                await self.load(name, adapter=adapter, jit=True)
            except ModelyardError as e:
                self.load_errors[name] = e

        self._jit[name] = asyncio.create_task(load())


def _engine_env(spec: EngineSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.update(spec.env)
    return env


def _kill_orphan(pid: int) -> None:
    """An engine left running by a server that died: stop its group if it is still ours."""
    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return
    if "llama" in cmd and os.getpgid(pid) == pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
