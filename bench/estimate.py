"""Memory estimate accuracy and speed: modelyard's estimate of gemma-3-270m at n_ctx 2048, 8192
and 32768 against the engine process's measured memory (RSS after one request, llama-server on
the CPU), next to the beginner's guide rule of thumb (file size + 2 GB); and the time the whole
estimate (reading the file included) takes.

    .venv/bin/python bench/estimate.py

Goals: within 5% or 32 MiB, whichever is larger; under 50 ms. The last line is the ratio of the
rule of thumb's worst error to modelyard's.
"""

from __future__ import annotations

import statistics
import time

import httpx

from common import gemma_file, modelyard_server
from modelyard.estimate.llama import Config, estimate
from modelyard.formats.gguf import read_gguf

MiB = 1 << 20


def main() -> None:
    rows = []
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=300) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        for n_ctx in (2048, 8192, 32768):
            options = {"n_ctx": n_ctx, "threads": 2}
            http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
            e = http.get(url + "/api/models/gemma3/estimate").json()
            http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
            body = {"model": "gemma3", "prompt": "Hello there", "max_tokens": 8}
            http.post(url + "/v1/completions", json=body).raise_for_status()
            time.sleep(0.3)
            real = http.get(url + "/api/instances").json()[0]["memory"]
            http.post(url + "/api/models/gemma3/unload", json={}).raise_for_status()
            rows.append((n_ctx, e["ram"]["total"], e["rule_of_thumb"], real))
        times = []
        for _ in range(21):
            start = time.perf_counter()
            estimate([read_gguf(gemma)], Config(n_ctx=8192))
            times.append(time.perf_counter() - start)
    print(f"{'n_ctx':>6} {'measured':>10} {'estimate':>10} {'error':>12} {'rule of thumb':>14} {'error':>12}")
    worst_ours = worst_rule = 0.0
    for n_ctx, ours, rule, real in rows:
        err, rule_err = ours - real, rule - real
        limit = max(0.05 * real, 32 * MiB)
        mark = "ok" if abs(err) <= limit else "MISSED"
        worst_ours, worst_rule = max(worst_ours, abs(err)), max(worst_rule, abs(rule_err))
        print(
            f"{n_ctx:>6} {real / MiB:>8.1f}Mi {ours / MiB:>8.1f}Mi {err / MiB:>+8.1f}Mi {mark:<3}"
            f"{rule / MiB:>11.1f}Mi {rule_err / MiB:>+10.1f}Mi"
        )
    print(
        f"whole estimate (read + compute), median of 21: {statistics.median(times) * 1000:.1f} ms (goal < 50 ms)"
    )
    print(
        f"ratio (rule of thumb's worst error / modelyard's worst error): {worst_rule / max(worst_ours, 1):.0f}x"
    )


if __name__ == "__main__":
    main()
