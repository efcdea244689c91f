"""Where the runner's model work runs: on the process's main thread, while the HTTP server runs
on a second one (serve.py). PyTorch's CPU kernels ran about twice as slow called from another
thread than from the main one (a tiny Whisper's decoding: 8.2 s against 4.0 s for the same
minute of audio, 2 cores), so the model's work is handed to the main thread."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class MainThread(Executor):
    """An executor whose work runs on the thread that calls ``serve`` (the main one)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.serving = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        self._jobs.put((done, fn, args, kwargs))
        return done

    def serve(self) -> None:
        """Run what is submitted, one at a time, until ``shutdown``."""
        self.serving = True
        try:
            while (job := self._jobs.get()) is not None:
                done, fn, args, kwargs = job
                if not done.set_running_or_notify_cancel():
                    continue
                try:
                    done.set_result(fn(*args, **kwargs))
                except BaseException as e:  # the caller gets it
                    done.set_exception(e)
        finally:
            self.serving = False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)


MAIN = MainThread()


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the main thread; in a thread of its own where the main thread serves
    nothing (a runner class used in-process, as tests do)."""
    if MAIN.serving:
        return await asyncio.get_running_loop().run_in_executor(MAIN, fn, *args)
    return await asyncio.to_thread(fn, *args)
