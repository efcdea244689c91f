"""The local executor: placeholders filled where the engine starts, an environment without the
server's secrets, a log per start, exits heard at once, process groups stopped with SIGTERM then
SIGKILL, engines that die with the server, and engines a crashed server left behind stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from modelyard.backends.base import FOLDER, HOST, PORT, EngineSpec, Placement
from modelyard.runtime.executor import Launch, LogRef
from modelyard.runtime.local import OWNER_VAR, LocalEngine, LocalExecutor


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


def python(script: str, **env: str) -> EngineSpec:
    return EngineSpec(
        argv=[sys.executable, "-c", textwrap.dedent(script), HOST, PORT, f"{FOLDER}/x.txt"], env=env
    )


def executor(tmp_path: Path, owner: str = "test-home") -> LocalExecutor:
    return LocalExecutor(tmp_path / "logs", tmp_path / "run", owner=owner)


async def until_logged(ex: LocalExecutor, ref: LogRef, line: str) -> None:
    """Until the engine printed ``line`` (the log's first line is the command)."""
    while line not in (await ex.read_log(ref) or b"").decode().splitlines()[1:]:
        await asyncio.sleep(0.02)


def test_placeholders_files_environment_and_one_log_per_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")  # the server's secrets stay with the server
    monkeypatch.setenv("MODELYARD_HF_TOKEN", "hf_secret")
    script = """
        import json, os, sys
        host, port, path = sys.argv[1:4]
        print(json.dumps({"host": host, "port": port, "file": open(path).read(), "env": dict(os.environ)}))
    """

    async def scenario() -> None:
        ex = executor(tmp_path)
        spec = python(script, FROM_BACKEND="1")
        spec = EngineSpec(argv=spec.argv, env=spec.env, files={"x.txt": "written first"})
        engine = await ex.launch(Launch(7, 1, spec, Placement(gpus=(1,)), env={"FROM_DEPLOYMENT": "2"}))
        assert await asyncio.wait_for(engine.wait(), 30) == 0
        log = (await ex.read_log(engine.log) or b"").decode()
        assert log.startswith("# ")  # the command line heads every log
        seen = json.loads(log.splitlines()[-1])
        assert seen["host"] == "127.0.0.1"
        assert engine.url == f"http://127.0.0.1:{seen['port']}"
        assert seen["file"] == "written first"
        env = seen["env"]
        assert "HF_TOKEN" not in env
        assert "MODELYARD_HF_TOKEN" not in env
        assert env["PATH"] == os.environ["PATH"]
        assert (env["FROM_BACKEND"], env["FROM_DEPLOYMENT"]) == ("1", "2")
        assert env["CUDA_VISIBLE_DEVICES"] == "1"  # the GPUs of its placement
        # a second start of the same instance writes a log of its own; a start run again (a
        # catalog made anew) starts its log afresh instead of appending to another's
        again = await ex.launch(Launch(7, 2, spec, Placement()))
        await again.wait()
        rerun = await ex.launch(Launch(7, 1, spec, Placement()))
        await rerun.wait()
        assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["7.1.log", "7.2.log"]
        assert (await ex.read_log(LogRef("local", 7, 1)) or b"").count(b"# ") == 1
        assert await ex.read_log(LogRef("local", 7, 3)) is None
        await ex.close()

    asyncio.run(scenario())


def test_stubborn_engine_and_its_children_are_killed(tmp_path: Path) -> None:
    # a "server" that ignores SIGTERM (saying so) and has a child of its own
    script = """
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM", flush=True))
        subprocess.Popen(["sleep", "300"])
        print("up", flush=True)
        while True:
            time.sleep(1)
    """

    async def scenario() -> None:
        ex = executor(tmp_path)
        engine = await ex.launch(Launch(1, 1, python(script), Placement()))
        await until_logged(ex, engine.log, "up")
        assert engine.returncode() is None
        assert (await engine.usage()).memory > 0
        code = await engine.stop(grace=0.5)
        assert code == -signal.SIGKILL  # SIGTERM was not enough: SIGKILL after the grace period
        assert "got SIGTERM" in (await ex.read_log(engine.log) or b"").decode().splitlines()[1:]
        assert engine.pid is not None
        assert living_members(engine.pid) == []  # the child went with the group
        await ex.close()

    asyncio.run(scenario())


def test_an_exit_is_heard_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        ex = executor(tmp_path)
        engine = await ex.launch(Launch(1, 1, python("import time; time.sleep(300)"), Placement()))
        assert isinstance(engine, LocalEngine)
        assert engine.pid is not None
        waiting = asyncio.ensure_future(engine.wait())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        os.kill(engine.pid, signal.SIGKILL)
        assert await asyncio.wait_for(waiting, 10) == -signal.SIGKILL
        assert engine.returncode() == -signal.SIGKILL
        await ex.close()

    asyncio.run(scenario())


SERVER = """
import asyncio, sys
from pathlib import Path
from modelyard.backends.base import EngineSpec, Placement
from modelyard.runtime.executor import Launch
from modelyard.runtime.local import LocalExecutor

async def main():
    ex = LocalExecutor(Path(sys.argv[1]) / "logs", Path(sys.argv[1]) / "run", owner=sys.argv[1])
    engine = await ex.launch(Launch(1, 1, EngineSpec(argv=["sleep", "300"]), Placement()))
    print(engine.pid, flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def test_engines_die_with_the_server(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        engine = psutil.Process(int(server.stdout.readline()))
        assert engine.is_running()
        server.kill()  # a crash: no chance to stop anything
    engine.wait(timeout=10)  # PR_SET_PDEATHSIG: the kernel kills it with its parent
    assert not engine.is_running()


def test_orphans_are_found_by_their_marker_whatever_their_command(tmp_path: Path) -> None:
    """Engines a crashed server left behind (a platform without PR_SET_PDEATHSIG, or an engine's
    own children) are stopped on the next start; another home's engines are left alone."""

    def orphan(owner: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, OWNER_VAR: owner}
        # no "llama" in its command line, like modelyard's own runner
        return subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)

    ours, theirs = orphan("home-a"), orphan("home-b")
    try:
        stopped = asyncio.run(executor(tmp_path, owner="home-a").stop_orphans())
        assert stopped == [ours.pid]
        assert ours.wait(timeout=10) == -signal.SIGKILL
        assert theirs.poll() is None
    finally:
        for p in (ours, theirs):
            p.kill()
            p.wait()
