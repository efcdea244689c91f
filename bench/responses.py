"""The Responses API against chat completions, both through modelyard's gateway on the same
llama-server: single-stream decode tokens/s and time to first token with the same prompts
(alternating), then conversations of about 2,000 tokens on a model of two replicas, each
continued by previous_response_id: its second turn must go back to the replica whose prompt cache
holds it. gemma-3-270m Q4_K_M, 2 threads an instance.

    .venv/bin/python bench/responses.py [--runs 15] [--tokens 128]

Goals: decode ratio (responses / chat) >= 0.97 and at most 3 ms added to the median time to
first token; the second turn's TTFT at most 25% of the first's. The last line is the decode
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import httpx

from common import StreamResult, gemma_file, modelyard_server
from prompt_cache import long_prompt

PROMPT = "Write a story about a lighthouse keeper."


def stream(http: httpx.Client, url: str, body: dict[str, Any]) -> tuple[StreamResult, str | None]:
    """One streamed request to /v1/chat/completions or /v1/responses: when its text began, how
    many pieces came and how fast; a response's id."""
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    rid = None
    with http.stream("POST", url, json={**body, "stream": True}) as r:
        if r.status_code != 200:
            raise SystemExit(f"{url}: {r.status_code} {r.read().decode()}")
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("type") == "response.created":
                rid = event["response"]["id"]
            text = event.get("delta") if event.get("type") == "response.output_text.delta" else None
            if event.get("choices"):
                text = event["choices"][0].get("delta", {}).get("content")
            if text:
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    return StreamResult(ttft=first - start, tokens=pieces, decode_seconds=last - first), rid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=128)
    a = parser.parse_args()
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=600) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        # a base model: ChatML formats its chats
        options = {"n_ctx": 4096, "threads": 2, "threads_batch": 2, "parallel": 1, "chat_template": "chatml"}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
        bodies = {
            "chat": (url + "/v1/chat/completions", {"model": "gemma3", "temperature": 0, "max_tokens": a.tokens,
                                                    "messages": [{"role": "user", "content": PROMPT}]}),
            "responses": (url + "/v1/responses", {"model": "gemma3", "temperature": 0, "store": False,
                                                  "max_output_tokens": a.tokens, "input": PROMPT}),
        }  # fmt: skip
        for target, body in bodies.values():  # warm both paths
            stream(http, target, body)
        results: dict[str, list[StreamResult]] = {"chat": [], "responses": []}
        for _ in range(a.runs):  # alternate, so drift hits both alike
            for name, (target, body) in bodies.items():
                results[name].append(stream(http, target, body)[0])
        ttft = {k: statistics.median(r.ttft for r in v) * 1000 for k, v in results.items()}
        tps = {k: statistics.median(r.tokens_per_second for r in v) for k, v in results.items()}
        added = statistics.median(
            (r.ttft - c.ttft) * 1000 for c, r in zip(results["chat"], results["responses"], strict=True)
        )
        # conversations of ~2,000 tokens on two replicas, two at a time: each opens, then each
        # asks one more question by previous_response_id, which must go back to the replica
        # whose prompt cache holds its conversation
        twin = gemma.with_name("gemma3-pair.gguf")  # the same file, once more in the library
        os.link(gemma, twin)
        pair = {"path": str(twin), "name": "gemma3-pair"}
        http.post(url + "/api/models", json=pair).raise_for_status()
        http.put(url + "/api/models/gemma3-pair/settings", json={"options": options}).raise_for_status()
        http.post(url + "/api/models/gemma3-pair/load", json={"replicas": 2}).raise_for_status()
        turns = []
        for n in range(3):
            opened = []
            for topic in (f"shelf {n}", f"cellar {n}"):
                opening = {"model": "gemma3-pair", "temperature": 0, "max_output_tokens": 16,
                           "input": long_prompt(topic)}  # fmt: skip
                opened.append(stream(http, url + "/v1/responses", opening))
            for first, rid in opened:
                follow = {"model": "gemma3-pair", "temperature": 0, "max_output_tokens": 16,
                          "previous_response_id": rid, "input": "Which box holds the most stones?"}  # fmt: skip
                second, _ = stream(http, url + "/v1/responses", follow)
                turns.append((first.ttft * 1000, second.ttft * 1000))
    print(
        f"runs {a.runs} x {a.tokens} tokens, gemma-3-270m Q4_K_M, llama-server, 2 threads, through the gateway"
    )
    for k in results:
        print(f"{k:<10} median TTFT {ttft[k]:7.2f} ms   median decode {tps[k]:6.1f} tokens/s")
    print(
        f"added to TTFT by the Responses translation (median of paired runs): {added:+.2f} ms (goal <= 3 ms)"
    )
    for first_ms, second_ms in turns:
        print(
            f"conversation: first turn TTFT {first_ms:7.1f} ms, second by previous_response_id {second_ms:6.1f} ms"
        )
    share = statistics.median(second / first for first, second in turns)
    print(f"second turn / first turn TTFT (median of {len(turns)}): {share:.3f} (goal <= 0.25)")
    print(f"ratio (responses / chat decode tokens/s): {tps['responses'] / tps['chat']:.3f}")


if __name__ == "__main__":
    main()
