"""Gateway overhead: single-stream decode tokens/s and time to first token through modelyard's
/v1 against the same llama-server instance called directly. gemma-3-270m Q4_K_M, 2 threads.

    .venv/bin/python bench/gateway_overhead.py [--runs 7] [--tokens 128]

Goal: ratio (gateway tokens/s / direct tokens/s) >= 0.98, and at most 2 ms added to the median
time to first token. The last line is the ratio.
"""

from __future__ import annotations

import argparse
import statistics

import httpx

from common import engine_headers, gemma_file, modelyard_server, stream_completion


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    a = parser.parse_args()
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=300) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 2048, "threads": 2, "threads_batch": 2, "parallel": 1}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        (inst,) = http.post(url + "/api/models/gemma3/load", json={}).json()["instances"]
        body = {"model": "gemma3", "prompt": "Once upon a time", "max_tokens": a.tokens, "temperature": 0,
                "ignore_eos": True}  # fmt: skip
        targets = {"direct": inst["url"] + "/v1/completions", "gateway": url + "/v1/completions"}
        headers = {"direct": engine_headers(inst["pid"]), "gateway": {}}
        for name, target in targets.items():  # warm both paths
            stream_completion(http, target, {**body, "max_tokens": 8}, headers[name])
        results: dict[str, list] = {"direct": [], "gateway": []}
        for _ in range(a.runs):  # alternate, so drift hits both alike
            for name, target in targets.items():
                results[name].append(stream_completion(http, target, body, headers[name]))
    ttft = {k: statistics.median(r.ttft for r in v) * 1000 for k, v in results.items()}
    tps = {k: statistics.median(r.tokens_per_second for r in v) for k, v in results.items()}
    # Each gateway run is paired with the direct run just before it: the median of the pairs'
    # differences is what the gateway adds, with the machine's drift taken out.
    added = statistics.median(
        (g.ttft - d.ttft) * 1000 for d, g in zip(results["direct"], results["gateway"], strict=True)
    )
    print(f"runs {a.runs} x {a.tokens} tokens, gemma-3-270m Q4_K_M, llama-server, 2 threads")
    for k in results:
        print(f"{k:<8} median TTFT {ttft[k]:7.2f} ms   median decode {tps[k]:6.1f} tokens/s")
    print(f"added to TTFT by the gateway (median of paired runs): {added:+.2f} ms (goal <= 2 ms)")
    print(f"ratio (gateway / direct decode tokens/s): {tps['gateway'] / tps['direct']:.3f}")


if __name__ == "__main__":
    main()
