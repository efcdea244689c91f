"""Load time: `modelyard load gemma3` (the CLI process, until it says the model serves) against
starting the same llama-server by hand (the engine's own command line, read from the instance
modelyard started, until its /health answers 200), alternating; and `modelyard ps`.
gemma-3-270m Q4_K_M, 2 threads.

    .venv/bin/python bench/load.py [--runs 7]

Goals: a load adds at most 150 ms to the engine's own start (median of paired runs); `modelyard
ps` answers in under 0.4 s. The last line is the ratio of the medians (modelyard / by hand).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from common import free_port, gemma_file, modelyard_server

CLI = [str(Path(sys.executable).parent / "modelyard")]  # the command people run


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def by_hand(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting the engine to its /health answering 200 (polled every 5 ms)."""
    port = free_port()
    at = argv.index("--port")
    argv = [*argv[: at + 1], str(port), *argv[at + 2 :]]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=2) as http:
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        return time.perf_counter() - start
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"llama-server exited with {proc.returncode}")
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=300) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 2048, "threads": 2, "threads_batch": 2, "parallel": 1}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        env = {**os.environ, "MODELYARD_URL": url}
        (inst,) = http.post(url + "/api/models/gemma3/load", json={}).json()["instances"]
        argv = Path(f"/proc/{inst['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        engine = [a.decode() for a in argv]
        engine_env = {**os.environ, **_environ(inst["pid"])}
        http.post(url + "/api/models/gemma3/unload", json={}).raise_for_status()
        by_hand(engine, engine_env)  # warm the page cache for both
        loads: list[float] = []
        hands: list[float] = []
        for _ in range(runs):  # alternate, so drift hits both alike
            hands.append(by_hand(engine, engine_env))
            loads.append(timed([*CLI, "load", "gemma3"], env))
            timed([*CLI, "unload", "gemma3"], env)
        timed([*CLI, "load", "gemma3"], env)
        ps = [timed([*CLI, "ps"], env) for _ in range(runs)]
    added = statistics.median((m - h) * 1000 for m, h in zip(loads, hands, strict=True))
    print(f"runs {runs}, gemma-3-270m Q4_K_M, llama-server, 2 threads")
    print(f"llama-server by hand, to /health 200: median {statistics.median(hands) * 1000:7.0f} ms")
    print(f"modelyard load, the CLI until it serves: median {statistics.median(loads) * 1000:7.0f} ms")
    print(f"added by modelyard (median of paired runs): {added:+.0f} ms (goal <= 150 ms)")
    print(f"modelyard ps: median {statistics.median(ps) * 1000:.0f} ms (goal < 400 ms)")
    print(f"ratio (modelyard load / by hand): {statistics.median(loads) / statistics.median(hands):.3f}")


def _environ(pid: int) -> dict[str, str]:
    """The engine's environment as modelyard set it (threads, library paths)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if b"=" in item)
    return {k: v for k, _, v in pairs}


if __name__ == "__main__":
    main()
