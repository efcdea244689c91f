"""A Runtime on a FakeExecutor, a FakeBackend and a FakeClock, over a real catalog: its rules run
in milliseconds and time moves only when a test says so."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.backends.registry import Backends
from modelyard.catalog.records import Adapter, Model
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.library import Library
from modelyard.runtime.executor import Node
from modelyard.runtime.queue import Queue, Slot
from modelyard.runtime.runtime import Runtime
from runtime.fake_clock import FakeClock, settle
from runtime.fake_executor import FakeBackend, FakeEngine, FakeExecutor, Script


@dataclass
class Harness:
    runtime: Runtime
    executor: FakeExecutor
    clock: FakeClock
    library: Library
    backend: FakeBackend

    def add(
        self, name: str, category: str = "chat", *, autoload: bool = False, adapters: tuple[str, ...] = ()
    ) -> Model:
        model = Model(
            name=name,
            category=category,
            format="gguf",
            path=f"/models/{name}.gguf",
            context_length=2048,
            autoload=autoload,
        )
        self.library.store.add_model(model)
        for a in adapters:
            self.library.store.add_adapter(name, Adapter(a, "gguf-lora", f"/models/{name}-{a}.gguf", 1))
        return self.library.get(name)

    def script(self, name: str, **how: Any) -> Script:
        self.executor.scripts[name] = Script(**how)
        return self.executor.scripts[name]

    def engines(self, name: str | None = None) -> list[FakeEngine]:
        return self.executor.running(name)

    def state(self, name: str) -> list[str]:
        return [i.state for i in self.runtime.instances() if i.model == name]

    async def acquire(self, name: str, adapter: str | None = None) -> tuple[Queue, Slot]:
        return await self.runtime.acquire(self.library.get(name), adapter, stays)

    def request(self, name: str, adapter: str | None = None) -> asyncio.Task[tuple[Queue, Slot]]:
        """A request that waits in the queue (a task), after it got there."""
        return asyncio.ensure_future(self.acquire(name, adapter))

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def served(self, request: asyncio.Task[Any], seconds: float = 30) -> Any:
        """The request's slot, once its model serves (time moving by half seconds, at most
        ``seconds``); fails if it is not served by then."""
        for _ in range(int(seconds / 0.5)):
            if request.done():
                break
            await self.advance(0.5)
        assert request.done(), "not served"
        return request.result()


async def stays() -> bool:
    """The client is still there."""
    return False


async def until(predicate: Callable[[], bool], rounds: int = 200) -> None:
    """Until ``predicate`` holds, letting the ready tasks run (no thread runs beside them: the
    runtime's blocking work is ``inline``, and time moves only by ``advance``); fails if it never
    does."""
    for _ in range(rounds):
        if predicate():
            return
        await settle()
    raise AssertionError("condition not reached")


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test, run in its own event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


async def inline(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """The runtime's blocking work, run at once: no thread races the fake clock."""
    return fn(*args, **kwargs)


@asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    http: bool = False,
    nodes: list[Node] | None = None,
    elastic: bool = False,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    settings = Settings(home=tmp_path / "home", **overrides)
    settings.ensure_home()
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    library = Library(store)
    clock = FakeClock()
    executor = FakeExecutor(clock, http=http, nodes=nodes, elastic=elastic)
    backend = FakeBackend()
    runtime = Runtime(
        settings, library, executor=executor, backends=Backends([backend]), clock=clock, offload=inline
    )
    await runtime.start()
    try:
        yield Harness(runtime, executor, clock, library, backend)
    finally:
        await runtime.close()
        store.close()
