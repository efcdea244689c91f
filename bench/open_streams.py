"""Many open streams: 1,000 clients hold a streaming completion through the gateway at once,
against an engine that streams slowly (a stand-in OpenAI server registered as a server that
already runs, so the gateway's own cost is what is measured). None may be dropped; the
gateway's memory per open stream is its RSS growth over the streams.

    .venv/bin/python bench/open_streams.py [--clients 1000] [--seconds 20]

Goal: all streams complete, <= 64 KiB of gateway memory per open stream. The last line is
KiB per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import psutil
from aiohttp import web

from common import free_port, wait_http


def slow_engine(port: int, chunks: int, every: float) -> None:
    """An OpenAI server whose completions stream ``chunks`` pieces, one every ``every`` s."""

    async def models(_r: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "slow", "object": "model"}]})

    async def completions(r: web.Request) -> web.StreamResponse:
        await r.read()
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(r)
        for i in range(chunks):
            await asyncio.sleep(every)
            chunk = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": f" {i}"}]}
            await out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await out.write(b"data: [DONE]\n\n")
        return out

    app = web.Application()
    app.add_routes([web.get("/v1/models", models), web.post("/v1/completions", completions)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=False)


async def clients(url: str, n: int) -> tuple[int, int]:
    """(streams that ended with [DONE], streams that failed)."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None), limits=limits) as http:

        async def one() -> bool:
            body = {"model": "slow", "prompt": "x", "max_tokens": 8, "stream": True}
            try:
                async with http.stream("POST", url + "/v1/completions", json=body) as r:
                    text = "".join([line async for line in r.aiter_lines()])
                return r.status_code == 200 and "[DONE]" in text
            except httpx.HTTPError:
                return False

        results = await asyncio.gather(*(one() for _ in range(n)))
    return sum(results), n - sum(results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each stream lasts")
    a = parser.parse_args()
    engine_port = free_port()
    chunks = 10
    threading.Thread(target=slow_engine, args=(engine_port, chunks, a.seconds / chunks), daemon=True).start()
    wait_http(f"http://127.0.0.1:{engine_port}/v1/models")
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {
            **os.environ,
            "MODELYARD_HOME": home,
            "MODELYARD_PORT": str(port),
            "MODELYARD_QUEUE_SIZE": "5000",
        }
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/api/health")
            with httpx.Client(base_url=url, timeout=60) as http:
                r = http.post("/api/models", json={"url": f"http://127.0.0.1:{engine_port}", "name": "slow"})
                r.raise_for_status()
                http.put(
                    "/api/models/slow/settings", json={"options": {"slots": a.clients}}
                ).raise_for_status()
                http.post("/api/models/slow/load", json={}).raise_for_status()
                http.post("/v1/completions", json={"model": "slow", "prompt": "x", "stream": True})  # warm
            gateway = psutil.Process(proc.pid)
            before = gateway.memory_info().rss
            peak = before
            done = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, gateway.memory_info().rss)
                    time.sleep(0.2)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            started = time.perf_counter()
            ok, failed = asyncio.run(clients(url, a.clients))
            elapsed = time.perf_counter() - started
            done.set()
            watcher.join()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    per_stream = (peak - before) / a.clients / 1024
    print(
        f"{a.clients} streams of {a.seconds:g} s each ({chunks} chunks) through the gateway, in {elapsed:.1f} s"
    )
    print(f"completed {ok}, dropped or failed {failed}")
    print(f"gateway RSS {before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB at the peak")
    print(f"gateway memory per open stream: {per_stream:.1f} KiB (goal <= 64 KiB)")


if __name__ == "__main__":
    main()
