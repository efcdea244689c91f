"""Queue fairness: 40 clients send at once (10 ms apart, so their order is known) to one model
with one slot; each waits in the gateway's queue. Under a first-come-first-served queue the
k-th client waits k service times; the measured waits are compared with that ideal.
gemma-3-270m Q4_K_M on llama-server, 1 slot, 2 threads, 16 tokens per request.

    .venv/bin/python bench/queue_fairness.py [--clients 40] [--tokens 16]

Goal: p99 of the waits <= 1.5x the ideal FIFO p99. The last line is that ratio.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx

from common import gemma_file, modelyard_server


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=16)
    a = parser.parse_args()
    body = {"model": "gemma3", "prompt": "Once upon a time", "max_tokens": a.tokens, "temperature": 0,
            "ignore_eos": True}  # fmt: skip
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=600) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 512, "threads": 2, "threads_batch": 2, "parallel": 1}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
        services = []
        for _ in range(5):  # one request alone: the service time
            start = time.perf_counter()
            http.post(url + "/v1/completions", json=body).raise_for_status()
            services.append(time.perf_counter() - start)
        service = statistics.median(services)
        sent: dict[int, float] = {}
        done: dict[int, float] = {}
        go = threading.Event()

        def client(i: int) -> None:
            with httpx.Client(timeout=600) as own:
                go.wait()
                time.sleep(0.010 * i)  # arrival order
                sent[i] = time.perf_counter()
                own.post(url + "/v1/completions", json=body).raise_for_status()
                done[i] = time.perf_counter()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join()
    waits = [done[i] - sent[i] - service for i in range(a.clients)]
    start0 = min(sent.values())
    # FIFO on one slot: client k starts when the k before it are done (or when it arrives)
    ideal, free_at = [], start0
    for i in sorted(sent, key=sent.get):  # type: ignore[arg-type]
        begins = max(free_at, sent[i])
        ideal.append(begins - sent[i])
        free_at = begins + service
    pairs = [(i, j) for i in range(a.clients) for j in range(i + 1, a.clients)]
    in_order = sum(1 for i, j in pairs if done[i] < done[j]) / len(pairs)
    print(f"{a.clients} clients, 1 slot, {a.tokens} tokens each; service time {service * 1000:.0f} ms")
    print(f"measured wait: median {statistics.median(waits):.2f} s, p99 {percentile(waits, 99):.2f} s")
    print(f"ideal FIFO wait: median {statistics.median(ideal):.2f} s, p99 {percentile(ideal, 99):.2f} s")
    print(f"pairs of clients served in the order they came: {in_order:.0%}")
    print(f"ratio (measured p99 / ideal FIFO p99): {percentile(waits, 99) / percentile(ideal, 99):.2f}")


if __name__ == "__main__":
    main()
