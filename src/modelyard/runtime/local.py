"""The LocalExecutor: engines as children of the server on this machine.

Each engine runs in its own process group (stopping it reaches its children too) and, on Linux,
dies with the server (PR_SET_PDEATHSIG, set by util-linux's setpriv before it execs the engine).
Its environment holds only what an engine needs (PATH, locale, GPU driver variables), the
backend's variables and the deployment's: never the server's secrets. Every engine carries a
marker of the server's home, so the engines a crashed server left behind are found and stopped
on the next start, whatever their command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import psutil

from modelyard.backends.base import FOLDER, HOST, PORT
from modelyard.errors import EngineError
from modelyard.formats.inspection import Inspection
from modelyard.monitor.gpus import nvidia
from modelyard.runtime.executor import Gpu, Launch, LogRef, Node, Usage

OWNER_VAR = "MODELYARD_ENGINE_OF"  # the server's home: whose engine this is
START_VAR = "MODELYARD_ENGINE_START"  # <instance>.<start>
# What an engine may see of the server's environment: where programs and libraries are, the
# locale, and the GPU drivers' and math libraries' variables.
PASSED = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH"}
PASSED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HIP_", "ROCR_", "HSA_", "GGML_", "OMP_", "MKL_", "OPENBLAS_")
PR_SET_PDEATHSIG = 1
SETPRIV = shutil.which("setpriv")


def engine_env(launch: Launch, owner: str) -> dict[str, str]:
    """The environment an engine starts with."""
    env = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith(PASSED_PREFIXES)}
    env.update(launch.spec.env)
    if launch.placement.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in launch.placement.gpus)
    env.update(launch.env)
    if launch.spec.key_env and launch.key:
        env[launch.spec.key_env] = launch.key
    env[OWNER_VAR] = owner
    env[START_VAR] = f"{launch.instance}.{launch.start}"
    return env


def fill(argv: list[str], host: str, port: int, folder: Path) -> list[str]:
    """The argv with the placeholders filled: whole arguments, or the folder as a prefix."""
    out = []
    for arg in argv:
        if arg == HOST:
            arg = host
        elif arg == PORT:
            arg = str(port)
        elif arg == FOLDER or arg.startswith(FOLDER + "/"):
            arg = str(folder) + arg[len(FOLDER) :]
        out.append(arg)
    return out


def dying_with_parent(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``argv`` made to get SIGKILL when this process ends (Linux), and the preexec_fn that
    needs, if any: util-linux's setpriv sets it and execs the engine, so that the child is
    spawned without running Python in it (a preexec_fn forces a fork of the whole server, 5-10
    ms that block its event loop, and is unsafe beside threads); without setpriv, a preexec_fn."""
    if not sys.platform.startswith("linux"):
        return argv, None
    if SETPRIV is not None:
        return [SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
    return argv, _die_with_parent()


def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn that makes the child get SIGKILL when this process ends (Linux)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the server died before the line above took effect
            os._exit(1)

    return setup


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Answering:
    """What every engine shares: where it answers, its health there, its log, its exit."""

    def __init__(
        self, url: str, health: str, log: LogRef, http: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        self._url = url
        self._health = url + health
        self._log = log
        self._http = http
        self._auth = auth  # some engines' health endpoints want the key too
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def url(self) -> str:
        return self._url

    @property
    def log(self) -> LogRef:
        return self._log

    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def healthy(self) -> bool:
        try:
            return (await self._http.get(self._health, headers=self._auth)).status_code == 200
        except httpx.HTTPError:
            return False


class LocalEngine(Answering):
    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        url: str,
        health: str,
        log: LogRef,
        http: httpx.AsyncClient,
        auth: dict[str, str],
    ) -> None:
        super().__init__(url, health, log, http, auth)
        self._popen = popen
        self._watched: dict[int, psutil.Process] = {}
        loop = asyncio.get_running_loop()

        def report(code: int) -> None:
            if not self._exit.done():
                self._exit.set_result(code)

        def watch() -> None:  # a thread: the loop hears of the exit the moment it happens
            code = popen.wait()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(report, code)

        threading.Thread(target=watch, name=f"engine-{popen.pid}", daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self._popen.pid

    async def stop(self, grace: float) -> int | None:
        if not self._exit.done():
            _signal_group(self._popen.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exit), grace)
        _signal_group(self._popen.pid, signal.SIGKILL)  # what is left of the group, its children too
        try:
            return await asyncio.wait_for(asyncio.shield(self._exit), 5)
        except TimeoutError:
            return None

    async def usage(self) -> Usage:
        return await asyncio.to_thread(lambda: Usage(memory=self._memory(), cpu_percent=self._cpu_percent()))

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self._popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _memory(self) -> int:
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _cpu_percent(self) -> float:
        """psutil measures from one call to the next, so the Process objects are kept; a process
        seen for the first time counts from its start."""
        total = 0.0
        watched: dict[int, psutil.Process] = {}
        for proc in self._tree():
            kept = self._watched.get(proc.pid, proc)
            with contextlib.suppress(psutil.Error):
                if kept is proc:  # new: its average since it started
                    times = proc.cpu_times()
                    total += 100 * (times.user + times.system) / max(time.time() - proc.create_time(), 1e-3)
                    proc.cpu_percent(None)  # the next call measures from now
                else:
                    total += kept.cpu_percent(None)
                watched[proc.pid] = kept
        self._watched = watched
        return round(total, 1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class RemoteEngine(Answering):
    """A server that already runs: nothing to start or stop. It "exits" (and so leaves the
    rotation, and is tried again after the restart backoff) when its health fails
    ``REMOTE_FAILURES`` times in a row, looked at every ``REMOTE_EVERY`` seconds; or at once
    when nothing has ever answered at its address (a load fails now, not after a timeout)."""

    def __init__(
        self, url: str, health: str, log: LogRef, http: httpx.AsyncClient, auth: dict[str, str]
    ) -> None:
        super().__init__(url.rstrip("/"), health, log, http, auth)
        self._watch: asyncio.Task[None] | None = None
        self._answered = False

    async def healthy(self) -> bool:
        try:
            ok = (await self._http.get(self._health, headers=self._auth)).status_code == 200
        except httpx.ConnectError:
            if not self._answered and not self._exit.done():
                self._exit.set_result(1)
            return False
        except httpx.HTTPError:
            return False
        self._answered = self._answered or ok
        return ok

    @property
    def pid(self) -> int | None:
        return None

    async def wait(self) -> int:
        if self._watch is None:
            self._watch = asyncio.create_task(self._watching())
        return await super().wait()

    async def _watching(self) -> None:
        failures = 0
        while not self._exit.done():
            await asyncio.sleep(REMOTE_EVERY)
            failures = 0 if await self.healthy() else failures + 1
            if failures >= REMOTE_FAILURES and not self._exit.done():
                self._exit.set_result(1)

    async def stop(self, grace: float) -> int | None:
        if not self._exit.done():
            self._exit.set_result(0)
        if self._watch is not None:
            self._watch.cancel()
        return 0

    async def usage(self) -> Usage:
        return Usage(memory=0, cpu_percent=0.0)  # another machine's


REMOTE_EVERY = 5.0
REMOTE_FAILURES = 3


class LocalExecutor:
    """Engines on this machine. ``owner`` (the server's home) marks the engines it starts."""

    node = "local"
    elastic = False

    def __init__(self, logs: Path, run: Path, owner: str, host: str = "127.0.0.1") -> None:
        self.logs = logs
        self.run = run
        self.owner = owner
        self.host = host
        self._http = httpx.AsyncClient(timeout=5.0)

    async def nodes(self, paths: Sequence[str] = ()) -> list[Node]:
        def look() -> Node:
            mem = psutil.virtual_memory()
            gpus = tuple(
                Gpu(g.index, g.name, g.memory_total, g.memory_total - (g.memory_used or 0), g.temperature)
                for g in nvidia()
                if g.memory_total
            )
            return Node(self.node, self.host, mem.total, mem.available, gpus)

        return [await asyncio.to_thread(look)]

    def log_path(self, ref: LogRef) -> Path:
        return self.logs / f"{ref.instance}.{ref.start}.log"

    async def launch(self, launch: Launch) -> LocalEngine | RemoteEngine:
        spec = launch.spec
        if spec.remote is not None:
            return await self._connect(launch, spec.remote)
        if launch.placement.peers:
            raise EngineError(
                "one machine cannot run an engine over several workers", hint="MODELYARD_CLUSTER"
            )
        port = free_port(self.host)
        folder = self.run / f"{launch.instance}.{launch.start}"
        ref = LogRef(self.node, launch.instance, launch.start)
        argv = fill(spec.argv, self.host, port, folder)
        env = engine_env(launch, self.owner)

        def prepare() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in spec.files.items():
                (folder / name).write_text(text, encoding="utf-8")
            self.logs.mkdir(parents=True, exist_ok=True)

        await asyncio.to_thread(prepare)
        # A new file for every start; Popen runs in the loop's thread, which lives as long as
        # the server: PR_SET_PDEATHSIG fires when the thread that started the child ends.
        with self.log_path(ref).open("wb") as log:
            command = shlex.join(argv).replace("\n", "\\n")  # one line
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n".encode())
            log.flush()
            argv, preexec = dying_with_parent(argv)
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
                start_new_session=True,  # its own process group: stop() reaches its children
                preexec_fn=preexec,
            )
        auth = {"Authorization": f"Bearer {launch.key}"} if launch.key else {}
        return LocalEngine(popen, f"http://{self.host}:{port}", spec.health_path, ref, self._http, auth)

    async def _connect(self, launch: Launch, url: str) -> RemoteEngine:
        """A server that already runs: its instance's log says where it is."""
        ref = LogRef(self.node, launch.instance, launch.start)

        def note() -> None:
            self.logs.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.log_path(ref).write_text(f"# {stamp} an external server at {url}: nothing started here\n")

        await asyncio.to_thread(note)
        return RemoteEngine(url, launch.spec.health_path, ref, self._http, dict(launch.spec.headers))

    async def read_log(self, ref: LogRef, offset: int = 0, limit: int = 1 << 20) -> bytes | None:
        path = self.log_path(ref)

        def read() -> bytes | None:
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    return f.read(limit)
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def tail_log(self, ref: LogRef, lines: int = 40) -> str:
        return await asyncio.to_thread(tail, self.log_path(ref), lines)

    async def inspect(self, path: str) -> tuple[str, Inspection] | None:
        return None  # this machine is the only node

    async def stop_orphans(self) -> list[int]:
        return await asyncio.to_thread(_stop_marked, self.owner)

    async def close(self) -> None:
        await self._http.aclose()


def _stop_marked(owner: str) -> list[int]:
    """SIGKILL the process groups of every process that carries this owner's marker."""
    stopped = []
    me = os.getpid()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid == me or proc.environ().get(OWNER_VAR) != owner:
                continue
            pgid = os.getpgid(proc.pid)
            if pgid != os.getpgid(me):
                _signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            stopped.append(proc.pid)
    return stopped


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ("" when there is none)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
