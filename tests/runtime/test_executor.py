"""The local executor: a process group per engine, SIGTERM then SIGKILL after the grace period."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from modelyard.runtime.executor import LaunchSpec, LocalExecutor, tail


def living_members(pgid: int) -> list[int]:
    """Processes of the group that still run (a killed child may linger as a zombie until init
    reaps it: it holds no memory)."""
    alive = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def test_stubborn_engine_and_its_children_are_killed(tmp_path: Path) -> None:
    # a "server" that ignores SIGTERM and has a child of its own
    script = "import os, signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
        "subprocess.Popen(['sleep', '300']); print('up', flush=True); time.sleep(300)"  # fmt: skip
    executor = LocalExecutor()
    log = tmp_path / "1.1.log"
    proc = executor.launch(
        LaunchSpec(argv=[sys.executable, "-c", script], env=dict(os.environ), log_path=log)
    )
    deadline = time.monotonic() + 10
    while tail(log, 1) != "up" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode() is None
    assert proc.memory() > 0
    start = time.monotonic()
    code = proc.stop(grace=0.5)
    assert 0.4 < time.monotonic() - start < 5  # waited the grace period, then SIGKILL
    assert code == -9
    assert living_members(proc.pid) == []  # the child went with the group
    assert log.read_text().startswith("# ")  # the command line heads every log
    assert tail(log, 1) == "up"
