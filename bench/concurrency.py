"""Concurrency: 8 concurrent streams, aggregate tokens/s, modelyard (llama-server with 8 parallel
slots and continuous batching, behind the gateway) against llama-cpp-python's own server on the
same model and threads. gemma-3-270m Q4_K_M, 2 threads.

    .venv/bin/python bench/concurrency.py [--streams 8] [--tokens 64]

Goal: ratio >= 2x. The last line is the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common import free_port, gemma_file, modelyard_server, stream_completion, wait_http


def aggregate(url: str, model: str, streams: int, tokens: int) -> tuple[float, int]:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": tokens, "temperature": 0.8}
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=streams + 2)) as http:
        stream_completion(http, url, {**body, "max_tokens": 4})  # warm
        start = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            results = list(pool.map(lambda _: stream_completion(http, url, body), range(streams)))
        elapsed = time.perf_counter() - start
    total = sum(r.tokens for r in results)
    return total / elapsed, total


def peer(gemma: Path, streams: int, tokens: int) -> tuple[float, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma), "--port", str(port),
         "--n_threads", "2", "--n_threads_batch", "2", "--n_ctx", "4096", "--model_alias", "gemma3",
         "--interrupt_requests", "false"],  # otherwise each new request cuts the running stream
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        return aggregate(f"http://127.0.0.1:{port}/v1/completions", "gemma3", streams, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def ours(gemma: Path, streams: int, tokens: int) -> tuple[float, int]:
    with modelyard_server() as url, httpx.Client(timeout=300) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 512 * streams, "threads": 2, "threads_batch": 2, "parallel": streams}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
        return aggregate(url + "/v1/completions", "gemma3", streams, tokens)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    a = parser.parse_args()
    with gemma_file() as gemma:
        peer_tps, peer_total = peer(gemma, a.streams, a.tokens)
        our_tps, our_total = ours(gemma, a.streams, a.tokens)
    print(f"{a.streams} concurrent streams x {a.tokens} tokens, gemma-3-270m Q4_K_M, 2 threads")
    print(f"llama-cpp-python server  {peer_tps:7.1f} tokens/s aggregate ({peer_total} tokens)")
    print(f"modelyard (llama-server) {our_tps:7.1f} tokens/s aggregate ({our_total} tokens)")
    print(f"ratio (modelyard / llama-cpp-python server): {our_tps / peer_tps:.2f}x")


if __name__ == "__main__":
    main()
