"""Executors start engine processes and stop them. The LocalExecutor runs each as a child in its
own process group on this machine; a Ray executor will run them on cluster nodes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one engine process: plain data, so it can cross a process or
    Ray boundary."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    host: str = "127.0.0.1"
    port: int = 0  # filled in by the executor when 0
    cwd: str | None = None


class EngineProcess(Protocol):
    pid: int
    url: str
    log_path: Path

    def returncode(self) -> int | None:
        """None while running, else the exit status (negative: killed by that signal)."""

    def stop(self, grace: float) -> int | None:
        """SIGTERM the whole group, SIGKILL it after ``grace`` seconds. Blocks."""

    def memory(self) -> int:
        """Resident memory of the process and its children, in bytes."""

    def cpu_percent(self) -> float:
        """CPU use of the process and its children since the last call, in % of one core."""


class Executor(Protocol):
    def launch(self, spec: LaunchSpec) -> EngineProcess: ...

    def free_port(self, host: str) -> int: ...


@dataclass
class LocalProcess:
    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path
    pid: int = field(init=False)
    _watched: dict[int, psutil.Process] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.pid = self.popen.pid

    def returncode(self) -> int | None:
        return self.popen.poll()

    def stop(self, grace: float) -> int | None:
        if self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Whatever is left of the group (the engine's own children too) gets SIGKILL.
        _signal_group(self.pid, signal.SIGKILL)
        try:
            return self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def memory(self) -> int:
        try:
            proc = psutil.Process(self.pid)
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return int(total)
        except psutil.Error:
            return 0

    def cpu_percent(self) -> float:
        """psutil measures from one call to the next, so the Process objects are kept; a process
        seen for the first time counts from its start."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        watched: dict[int, psutil.Process] = {}
        for proc in procs:
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


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LocalExecutor:
    """Engine processes as children of the server, each in its own process group."""

    def free_port(self, host: str = "127.0.0.1") -> int:
        with socket.socket() as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])

    def launch(self, spec: LaunchSpec) -> LocalProcess:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as log:
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(spec.argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=spec.env,
                cwd=spec.cwd,
                start_new_session=True,  # its own process group: stop() reaches its children too
            )
        return LocalProcess(popen=popen, url=f"http://{spec.host}:{spec.port}", log_path=spec.log_path)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
