"""Throughput at concurrency: the same llama-server (8 slots) called directly and through
modelyard's gateway, by the same asyncio clients, at 1, 8 and 32 concurrent streams and 64
concurrent non-streaming clients. gemma-3-270m Q4_K_M, 2 threads. The rounds alternate (direct,
gateway, direct, ...) so the machine's drift hits both alike; the best round of each counts.

Also the gateway's own CPU time (its process, user + system) per 1,000 relayed chunks and per
1,000 requests.

    .venv/bin/python bench/throughput.py [--rounds 3] [--tokens 64] [--requests 256] [--trace 0.1]

With --trace SHARE the gateway traces that share of its requests (OpenTelemetry, to an OTLP/HTTP
receiver the benchmark runs on 127.0.0.1).

Goal: >= 0.95 of direct at every point. The last line is the lowest ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
import psutil

from common import engine_headers, gemma_file, modelyard_server, otlp_receiver

SLOTS = 8


@dataclass
class Run:
    units: int  # tokens (streams) or requests (non-streaming)
    seconds: float
    cpu: float  # the gateway's CPU seconds during the run (0 for direct)
    chunks: int

    @property
    def rate(self) -> float:
        return self.units / self.seconds


async def streams(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int, tokens: int
) -> tuple[int, int]:
    body = orjson.dumps({"model": "gemma3", "prompt": "Once upon a time", "max_tokens": tokens,
                         "temperature": 0.8, "ignore_eos": True, "stream": True})  # fmt: skip

    async def one() -> tuple[int, int]:
        got = chunks = 0
        async with session.post(url + "/v1/completions", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            async for line in r.content:
                if line.startswith(b"data: {"):
                    chunks += 1
                    if b'"text":""' not in line:
                        got += 1
        return got, chunks

    results = await asyncio.gather(*(one() for _ in range(n)))
    return sum(r[0] for r in results), sum(r[1] for r in results)


async def requests(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], clients: int, total: int
) -> tuple[int, int]:
    body = orjson.dumps({"model": "gemma3", "prompt": "Hi", "max_tokens": 1, "temperature": 0})
    left = total

    async def client() -> int:
        nonlocal left
        done = 0
        while left > 0:
            left -= 1
            async with session.post(url + "/v1/completions", data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()
            done += 1
        return done

    return sum(await asyncio.gather(*(client() for _ in range(clients)))), 0


async def measure(point: str, url: str, headers: dict[str, str], gateway: psutil.Process | None,
                  tokens: int, total: int) -> Run:  # fmt: skip
    headers = {**headers, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=600)
    ) as session:
        cpu0 = sum(gateway.cpu_times()[:2]) if gateway else 0.0
        start = time.perf_counter()
        if point == "64 clients":
            units, chunks = await requests(session, url, headers, 64, total)
        else:
            units, chunks = await streams(session, url, headers, int(point.split()[0]), tokens)
        seconds = time.perf_counter() - start
        cpu = sum(gateway.cpu_times()[:2]) - cpu0 if gateway else 0.0
    return Run(units, seconds, cpu, chunks)


def pid_listening(port: int) -> int:
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
            return c.pid
    raise RuntimeError(f"nothing listens on {port}")


def profiler(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy (from the registry; as root) sampling the gateway until interrupted."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    n = len(list(Path(out).parent.glob(Path(out).name + "*")))
    argv = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--nonblocking",
            "--output", f"{out}.{n}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=512, help="non-streaming requests per round")
    parser.add_argument("--only", help="one load point, such as '64 clients'")
    parser.add_argument("--profile", help="py-spy's collapsed stacks of the gateway's runs into this file")
    parser.add_argument(
        "--trace", type=float, help="the gateway traces this share of requests (to a receiver here)"
    )
    a = parser.parse_args()
    points = [a.only] if a.only else ["1 stream", "8 streams", "32 streams", "64 clients"]
    os.environ["MODELYARD_QUEUE_SIZE"] = "256"  # 64 clients on 8 slots: 56 wait
    with contextlib.ExitStack() as stack:
        settings: dict[str, str] = {}
        spans = [0]
        if a.trace is not None:
            receiver, spans = stack.enter_context(otlp_receiver())
            settings = {"MODELYARD_OTEL_ENDPOINT": receiver, "MODELYARD_OTEL_SAMPLE": str(a.trace)}
        url = stack.enter_context(modelyard_server(settings=settings))
        best = run_points(a, points, url)
    print(
        f"gemma-3-270m Q4_K_M on llama-server, {SLOTS} slots, 2 threads; best of {a.rounds} alternating rounds"
        + (
            f"; the gateway traced {a.trace:.0%} of requests ({spans[0]} spans sent)"
            if a.trace is not None
            else ""
        )
    )
    print(f"{'load':<12}{'direct':>14}{'gateway':>14}{'ratio':>8}   gateway CPU")
    ratios = []
    for point in points:
        d, g = best[(point, "direct")], best[(point, "gateway")]
        unit = "req/s" if point == "64 clients" else "tok/s"
        ratio = g.rate / d.rate
        ratios.append(ratio)
        per = (f"{g.cpu / g.units * 1000:.2f} s per 1,000 requests" if point == "64 clients"
               else f"{g.cpu / max(g.chunks, 1) * 1000:.3f} s per 1,000 chunks")  # fmt: skip
        print(f"{point:<12}{d.rate:>8.1f} {unit}{g.rate:>8.1f} {unit}{ratio:>8.3f}   {per}")
    print(f"lowest ratio (goal >= 0.95): {min(ratios):.3f}")


def run_points(a: argparse.Namespace, points: list[str], url: str) -> dict[tuple[str, str], Run]:
    """The best round of each load point on each side."""
    with gemma_file() as gemma, httpx.Client(timeout=300) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 512 * SLOTS, "threads": 2, "threads_batch": 2, "parallel": SLOTS}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        (inst,) = http.post(url + "/api/models/gemma3/load", json={}).json()["instances"]
        gateway = psutil.Process(pid_listening(int(url.rsplit(":", 1)[1])))
        targets = {"direct": (inst["url"], engine_headers(inst["pid"]), None), "gateway": (url, {}, gateway)}
        for base, headers, _ in targets.values():  # warm both paths
            asyncio.run(measure("8 streams", base, headers, None, 4, 0))
        best: dict[tuple[str, str], Run] = {}
        for _ in range(a.rounds):
            for point in points:
                for name, (base, headers, proc) in targets.items():
                    spy = profiler(gateway.pid, a.profile) if a.profile and name == "gateway" else None
                    run = asyncio.run(measure(point, base, headers, proc, a.tokens, a.requests))
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(60)
                    if (point, name) not in best or run.rate > best[(point, name)].rate:
                        best[(point, name)] = run
    return best


if __name__ == "__main__":
    main()
