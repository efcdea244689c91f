"""Prompt caching: time to first token of a repeated ~2,000-token prompt, cold and again, on
llama-server called directly (the peer) and through modelyard's gateway with two replicas of the
same model and session affinity (each conversation goes back to the replica whose prompt cache
holds it). Two conversations are sent at once, so that they land on different replicas; then
both again, at once. gemma-3-270m Q4_K_M, 2 threads an instance.

    .venv/bin/python bench/prompt_cache.py

Goal: the second request's TTFT at most 25% of the first's through the gateway. The last line
is that ratio (the median of both conversations).
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

import httpx

from common import engine_headers, gemma_file, modelyard_server, stream_completion

COLORS = ("red", "green", "blue", "amber", "violet", "white", "black", "grey")


def long_prompt(topic: str, items: int = 120) -> str:
    """About 2,000 tokens of a list about ``topic`` (each line differs: nothing repeats)."""
    lines = [
        f"{topic} note {i}: the {COLORS[i % len(COLORS)]} box holds {i * 7 % 101} stones."
        for i in range(items)
    ]
    return "\n".join(lines) + f"\nSummarise the {topic} notes in one sentence:"


def main() -> None:
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=600) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 4096, "threads": 2, "threads_batch": 2, "parallel": 1}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        loaded = http.post(url + "/api/models/gemma3/load", json={"replicas": 2}).json()
        first, _second = loaded["instances"]
        # on a connection of its own: llama-server may close it after this answer
        tokens = httpx.post(first["url"] + "/tokenize", json={"content": long_prompt("peer")},
                            headers=engine_headers(first["pid"])).json()["tokens"]  # fmt: skip
        print(f"prompt: {len(tokens)} tokens")

        def ask(target: str, prompt: str, headers: dict[str, str] | None = None) -> float:
            body = {"model": "gemma3", "prompt": prompt, "max_tokens": 4, "temperature": 0}
            return stream_completion(http, target, body, headers).ttft

        # the peer: one llama-server, the same prompt twice
        direct = first["url"] + "/v1/completions"
        # each on a new connection: here llama-server closed the kept-alive one after the first
        # answer, and httpx does not send again on a new one
        headers = {**engine_headers(first["pid"]), "Connection": "close"}
        peer = [ask(direct, long_prompt("peer"), headers) for _ in range(2)]
        # modelyard: two conversations at once (one on each replica), then both again at once
        gateway = url + "/v1/completions"
        prompts = [long_prompt("apple"), long_prompt("river")]
        with ThreadPoolExecutor(2) as pool:
            cold = list(pool.map(lambda p: ask(gateway, p), prompts))
            warm = list(pool.map(lambda p: ask(gateway, p), prompts))
        metrics = http.get(url + "/metrics").text
    hits = [line for line in metrics.splitlines() if line.startswith("modelyard_affinity_routes_total")]
    cached = [
        line for line in metrics.splitlines() if line.startswith("modelyard_cached_prompt_tokens_total")
    ]
    print(
        f"direct   first {peer[0] * 1000:8.1f} ms   again {peer[1] * 1000:8.1f} ms   ratio {peer[1] / peer[0]:.3f}"
    )
    ratios = []
    for name, c, w in zip(("apple", "river"), cold, warm, strict=True):
        ratios.append(w / c)
        print(f"gateway  {name:<6} first {c * 1000:8.1f} ms   again {w * 1000:8.1f} ms   ratio {w / c:.3f}")
    print("\n".join(hits + cached))
    print(f"ratio (second TTFT / first, through the gateway, two replicas): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
