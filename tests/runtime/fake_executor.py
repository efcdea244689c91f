"""A FakeExecutor and a FakeBackend, for tests of the runtime's rules that need no real engine.

Engines follow a script per model: become ready after a while (on the FakeClock), never (a
stall), fail while starting, or crash later; tests can also crash one, or make one ready, at any
moment. With ``http=True`` an engine also answers HTTP on 127.0.0.1 (/health and canned OpenAI
answers), and a test can hold its answers to keep requests in flight. Never used by the product.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends import flags
from modelyard.backends.base import HOST, PORT, EngineSpec, Find, Placement, Progress
from modelyard.catalog.records import Adapter, Model
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable
from modelyard.estimate import Fit
from modelyard.estimate.llama import Breakdown, Estimate
from modelyard.formats.inspection import Inspection
from modelyard.runtime.clock import Clock, SystemClock
from modelyard.runtime.executor import Launch, LogRef, Node, Usage
from modelyard.runtime.local import free_port

GiB = 1 << 30


@dataclass
class Script:
    """How the engines of one model behave."""

    ready_after: float | None = 0.0  # seconds on the clock; None: never (it stalls)
    fail_start: bool = False  # exits with status 1 while starting
    crash_after: float | None = None  # exits with status 1 this long after it became ready
    memory: int = 100 << 20
    slots: int = 1


def model_of(argv: list[str]) -> str:
    """The model a fake engine serves: the value of its --model."""
    return argv[argv.index("--model") + 1]


@dataclass
class FakeEngine:
    executor: FakeExecutor
    launch: Launch
    script: Script
    pid: int
    url: str = ""
    exit: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    ready: bool = False
    hold: asyncio.Event = field(default_factory=asyncio.Event)  # answers wait until it is set
    answered: int = 0
    _site: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.hold.set()

    @property
    def log(self) -> LogRef:
        return LogRef("local", self.launch.instance, self.launch.start)

    @property
    def model(self) -> str:
        return model_of(self.launch.spec.argv)

    def write(self, line: str) -> None:
        self.executor.logs.setdefault(self.log, bytearray()).extend(f"{line}\n".encode())

    def returncode(self) -> int | None:
        return self.exit.result() if self.exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.exit)

    async def healthy(self) -> bool:
        return self.ready and not self.exit.done()

    async def stop(self, grace: float) -> int | None:
        self.end(-15, "stopped")
        await self._close_http()
        return self.returncode()

    async def usage(self) -> Usage:
        return Usage(memory=0 if self.exit.done() else self.script.memory, cpu_percent=0.0)

    # -- what tests do to it -------------------------------------------------------------------

    def end(self, code: int, why: str) -> None:
        if not self.exit.done():
            self.ready = False
            self.write(f"{why} (status {code})")
            self.exit.set_result(code)

    async def crash(self, code: int = 1, *, report: bool = True) -> None:
        """The engine dies: it stops answering at once; its exit is reported now, or (``report``
        False) only when ``end`` is called, as when the executor hears of it late."""
        self.ready = False
        await self._close_http()
        if report:
            self.end(code, "crashed")

    async def _close_http(self) -> None:
        if self._site is not None:
            site, self._site = self._site, None
            await site.cleanup()

    def start(self) -> None:
        self.write(f"fake engine for {self.model} starting")
        if self.script.ready_after == 0 and not self.script.fail_start:
            self.ready = True
            self.write("ready")

    async def _run(self, clock: Clock) -> None:
        if self.script.fail_start:
            await asyncio.sleep(0)
            self.end(1, "error: the model could not be loaded")
            return
        if self.script.ready_after is None:
            return  # stalls: never ready
        if not self.ready:
            await clock.sleep(self.script.ready_after)
            if self.exit.done():
                return
            self.ready = True
            self.write("ready")
        if self.script.crash_after is not None:
            await clock.sleep(self.script.crash_after)
            await self.crash()

    async def serve_http(self) -> None:
        async def health(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"}, status=200 if self.ready else 503)

        async def answer(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            await self.hold.wait()
            self.answered += 1
            text = f"answer {self.answered} from {self.model}"
            if body.get("stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                for word in text.split():
                    chunk = {"choices": [{"index": 0, "text": word + " ", "finish_reason": None}]}
                    await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await response.write(b"data: [DONE]\n\n")
                return response
            return web.json_response({"model": body.get("model"), "choices": [{"index": 0, "text": text}]})

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_post("/v1/completions", answer)
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port("127.0.0.1")
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._site = runner
        self.url = f"http://127.0.0.1:{port}"


class FakeExecutor:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        http: bool = False,
        nodes: list[Node] | None = None,
        orphans: list[int] | None = None,
        elastic: bool = False,
    ) -> None:
        self.clock = clock or SystemClock()
        self.elastic = elastic
        self.http = http
        self.scripts: dict[str, Script] = {}
        self.engines: list[FakeEngine] = []
        self.logs: dict[LogRef, bytearray] = {}
        self.orphans = list(orphans or [])
        self.inventory = nodes or [Node("local", "127.0.0.1", 64 * GiB, 32 * GiB)]  # tests change it
        self._pids = itertools.count(10_000)
        self._tasks: set[asyncio.Task[None]] = set()

    def running(self, model: str | None = None) -> list[FakeEngine]:
        """The engines that have not exited, of ``model`` or of all."""
        return [e for e in self.engines if not e.exit.done() and model in (None, e.model)]

    async def nodes(self, paths: Sequence[str] = ()) -> list[Node]:
        return list(self.inventory)

    async def launch(self, launch: Launch) -> FakeEngine:
        model = model_of(launch.spec.argv)
        engine = FakeEngine(self, launch, self.scripts.get(model, Script()), next(self._pids))
        if self.http:
            await engine.serve_http()
        else:
            engine.url = f"http://fake/{launch.instance}.{launch.start}"
        self.engines.append(engine)
        engine.start()
        task = asyncio.create_task(engine._run(self.clock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return engine

    async def read_log(self, ref: LogRef, offset: int = 0, limit: int = 1 << 20) -> bytes | None:
        text = self.logs.get(ref)
        return None if text is None else bytes(text[offset : offset + limit])

    async def tail_log(self, ref: LogRef, lines: int = 40) -> str:
        return "\n".join(bytes(self.logs.get(ref, b"")).decode().splitlines()[-lines:])

    async def inspect(self, path: str) -> tuple[str, Inspection] | None:
        return None

    async def stop_orphans(self) -> list[int]:
        stopped, self.orphans = self.orphans, []
        return stopped

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for engine in self.engines:
            await engine._close_http()


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(0, ge=0)


class FakeBackend:
    """Takes every model; its engine's argv names the model, which the FakeExecutor scripts."""

    name: ClassVar[str] = "fake"
    loader: ClassVar[str] = "fake"
    options: ClassVar[type[BaseModel]] = FakeOptions
    merges_embeddings: ClassVar[bool] = False
    anthropic_messages: ClassVar[bool] = False
    distributable: ClassVar[bool] = False
    dialect: ClassVar[str] = "openai"
    lora_option: ClassVar[str | None] = None
    slots_share_context: ClassVar[bool] = False
    installs_on_first_use = False

    def __init__(self, need: int = 1 * GiB, slots: int = 1, vram: int = 0) -> None:
        self.need = need  # RAM one instance needs, for the fit
        self.vram = vram  # VRAM it needs on a GPU (0: it runs on the CPU only)
        self.beside: int | None = None  # RAM it needs beside a GPU (None: ``need``)
        self.slots = slots
        self.builds: set[str] = set()  # versions installed beside the default
        self.missing = False  # the default build is not installed (until ``install``)
        self.building = threading.Event()  # an install of the default build ends once it is set
        self.building.set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return options

    def endpoints(self, model: Model) -> frozenset[str]:
        return frozenset({"chat", "completions", "embeddings"})

    def served_name(self, model: Model, adapter: str | None) -> str:
        return model.name

    def check(self, model: Model, endpoint: str) -> None:
        return None

    def engine(
        self,
        model: Model,
        options: FakeOptions,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        argv = [self.preflight(version), "--host", HOST, "--port", PORT]
        if adapter is not None:
            argv += ["--lora", adapter.path]
        return EngineSpec(argv=[*argv, "--model", model.name], slots=self.slots, runtime="fake")

    def fit(
        self, model: Model, options: FakeOptions, adapter: Adapter | None, free_ram: int, free_vram: list[int]
    ) -> Fit | None:
        on_gpu = bool(self.vram and free_vram)
        ram = self.beside if on_gpu and self.beside is not None else self.need
        e = Estimate(n_ctx=options.n_ctx or 2048, n_gpu_layers=0, ram=Breakdown(weights=ram))
        if on_gpu:
            e.vram = [Breakdown(weights=self.vram)] + [Breakdown() for _ in free_vram[1:]]
        fits = ram <= free_ram and all(v.total <= f for v, f in zip(e.vram, free_vram, strict=False))
        return Fit(e, free_ram, fits, max_ctx=None, rule_of_thumb=self.need)

    def executable(self) -> str:
        return ""

    def preflight(self, version: str | None = None) -> str:
        if version is not None and version not in self.builds:
            raise EngineUnavailable(f"fake-engine {version} is not installed")
        if version is None and self.missing:
            raise EngineUnavailable("fake-engine is not installed", hint="`modelyard backends install fake`")
        return f"fake-engine-{version}" if version else "fake-engine"

    def versions(self) -> list[str]:
        return sorted(self.builds)

    def check_args(self, args: list[str], version: str | None = None) -> None:
        flags.check(args, frozenset({"--fast", "--mode"}), "fake-engine")

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        if version is not None:
            self.builds.add(version)
        else:
            progress("building", 1, 2)
            assert self.building.wait(10)
            self.missing = False
        return self.preflight(version)
