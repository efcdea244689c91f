"""vLLM through the gateway against the same vLLM engine called directly: aggregate tokens/s
at 8 and 32 concurrent streams, the same clients, alternating rounds in one run. vLLM's CPU
build (its managed environment: `modelyard backends install vllm --variant cpu`) serving a
tiny Llama (hidden 128, trained BPE tokenizer) built here.

    .venv/bin/python bench/vllm_gateway.py [--rounds 3] [--tokens 64] [--streams 8 32]

Goal: ratio (gateway / direct) >= 0.95 at every point. The last line is the lowest ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common import engine_headers, modelyard_server, stream_completion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torch_models

ENVS = Path.home() / ".modelyard" / "envs"
SETTINGS = {"n_ctx": 512, "precision": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 256 << 20}


def aggregate(url: str, streams: int, tokens: int, headers: dict[str, str]) -> float:
    body = {"model": "tiny", "prompt": "the quick brown fox", "max_tokens": tokens, "temperature": 0.8,
            "ignore_eos": True}  # fmt: skip
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=streams + 2)) as http:
        start = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            results = list(pool.map(lambda _: stream_completion(http, url, body, headers), range(streams)))
        elapsed = time.perf_counter() - start
    return sum(r.tokens for r in results) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--bind", default="0", help="vLLM's CPU threads' cores (VLLM_CPU_OMP_THREADS_BIND)")
    a = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        modelyard_server(ENVS) as url,
        httpx.Client(timeout=600) as http,
    ):
        model = torch_models.write_chat_model(Path(tmp) / "tiny-llama", hidden=128)
        options = {**SETTINGS, "max_num_seqs": max(a.streams)}
        r = http.post(url + "/api/deployments",
                      json={"path": str(model), "name": "tiny", "backend": "vllm", "settings": options,
                            "env": {"VLLM_CPU_OMP_THREADS_BIND": a.bind}})  # fmt: skip
        r.raise_for_status()
        (inst,) = r.json()["deployment"]["instances"]
        targets = {"direct": inst["url"] + "/v1/completions", "gateway": url + "/v1/completions"}
        headers = {"direct": engine_headers(inst["pid"]), "gateway": {}}
        for name, target in targets.items():  # warm both paths
            aggregate(target, 4, 8, headers[name])
        results: dict[tuple[int, str], list[float]] = {}
        for _ in range(a.rounds):  # alternate, so drift hits both alike
            for streams in a.streams:
                for name, target in targets.items():
                    results.setdefault((streams, name), []).append(
                        aggregate(target, streams, a.tokens, headers[name])
                    )
    print(
        f"vLLM {SETTINGS['precision']} on the CPU, tiny Llama, {a.rounds} rounds x {a.tokens} tokens per stream"
    )
    ratios = []
    for streams in a.streams:
        direct = statistics.median(results[(streams, "direct")])
        gateway = statistics.median(results[(streams, "gateway")])
        ratios.append(gateway / direct)
        print(
            f"{streams:>3} streams: direct {direct:7.1f} tok/s   gateway {gateway:7.1f} tok/s   ratio {gateway / direct:.3f}"
        )
        rounds = zip(results[(streams, "direct")], results[(streams, "gateway")], strict=True)
        print("    each round, direct/gateway: " + ", ".join(f"{d:.0f}/{g:.0f}" for d, g in rounds))
    print(f"lowest ratio (gateway / direct): {min(ratios):.3f}")


if __name__ == "__main__":
    main()
