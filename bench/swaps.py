"""Fewer model swaps: three chat models loaded on demand under the one-chat-model rule, and
three clients, each asking its own model again as soon as it is answered, so that their
requests come interleaved. The same clients against a server that loads each model the moment
it is asked for (MODELYARD_SWAP_BOUND=0: first come first served, today's order) and against
the default, where the models take turns (swap bound 30 s). gemma-3-270m Q4_K_M, three copies
of the file (three models), 2 threads, 8 tokens per request.

    .venv/bin/python bench/swaps.py [--requests 12]

Goal: >= 3x fewer swaps and a shorter total time with turns, and no request waiting longer
than the bound (plus a load). The last line is the ratio of swaps.
"""

from __future__ import annotations

import argparse
import re
import shutil
import threading
import time
from pathlib import Path

import httpx

from common import gemma_file, modelyard_server

MODELS = ("alpha", "beta", "gamma")
BOUND = 30.0


def phase(gemma: Path, bound: float, requests: int) -> tuple[int, float, float]:
    """The swaps, the total time and the longest request, against a server with ``bound``."""
    settings = {"MODELYARD_SWAP_BOUND": str(bound), "MODELYARD_QUEUE_TIMEOUT": "0"}
    with modelyard_server(settings=settings) as url, httpx.Client(timeout=600) as http:
        for name in MODELS:
            copy = gemma.with_name(f"{name}.gguf")
            if not copy.exists():
                shutil.copy(gemma, copy)
            http.post(url + "/api/models", json={"path": str(copy), "name": name}).raise_for_status()
            http.patch(url + f"/api/models/{name}", json={"autoload": True}).raise_for_status()
            options = {"n_ctx": 512, "threads": 2, "threads_batch": 2}
            http.put(url + f"/api/models/{name}/settings", json={"options": options}).raise_for_status()
        longest: list[float] = []
        lock = threading.Lock()

        failures: list[str] = []

        def client(model: str) -> None:
            with httpx.Client(timeout=1800) as c:
                for _ in range(requests):
                    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
                    start = time.perf_counter()
                    r = c.post(url + "/v1/completions", json=body)
                    with lock:
                        longest.append(time.perf_counter() - start)
                        if r.status_code != 200:
                            failures.append(f"{model}: {r.status_code} {r.text}")

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(m,)) for m in MODELS]
        for t in threads:
            t.start()
            time.sleep(0.2)
        for t in threads:
            t.join()
        took = time.perf_counter() - start
        if failures:
            raise SystemExit(f"{len(failures)} requests failed: {failures[0]}")
        metrics = http.get(url + "/metrics").text
    found = re.search(r"^modelyard_model_swaps_total (\S+)$", metrics, re.M)
    assert found is not None, "no swaps metric"
    return int(float(found.group(1))), took, max(longest)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12, help="requests of each client")
    a = parser.parse_args()
    results = {}
    with gemma_file() as gemma:
        for name, bound in (("at once", 0.0), ("in turns", BOUND)):
            swaps, took, longest = phase(gemma, bound, a.requests)
            results[name] = swaps
            print(f"{name:>9}: {3 * a.requests} requests, {swaps} swaps, {took:.1f} s in all, "
                  f"the longest request {longest:.1f} s")  # fmt: skip
    print(f"ratio (swaps at once / in turns): {results['at once'] / max(1, results['in turns']):.2f}")


if __name__ == "__main__":
    main()
