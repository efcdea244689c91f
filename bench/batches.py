"""A batch beside interactive requests, and a server killed halfway through it.

gemma-3-270m Q4_K_M on llama-server, 2 slots, 2 threads. First, interactive clients alone: one
streamed completion (a different question each, 8 tokens) every ``--every`` seconds; their
wait is the time to the first token. Then a batch of ``--requests`` completions (8 tokens each)
starts, and the same interactive clients run beside it. Their p99 wait with the batch is
compared with their p99 wait without it. Then, halfway through the batch, the server (with its
engine) is killed with SIGKILL, started again on the same home, and the batch goes on: its
output and error files must hold each custom_id exactly once.

    .venv/bin/python bench/batches.py [--requests 1000] [--interactive 60] [--every 0.5]

Goal: interactive p99 wait with the batch <= 1.5x without it; after the kill none lost and none
repeated. The last line is that ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter

import httpx

from common import free_port, gemma_file, start_server, stream_completion

ENDED = ("completed", "failed", "expired", "cancelled")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def interactive(url: str, count: int, every: float) -> list[float]:
    """``count`` clients, one every ``every`` s, each a streamed completion: their waits."""
    waits: list[float] = []

    def one(i: int) -> None:
        body = {"model": "gemma3", "prompt": f"Question {i}: what is {i} plus {i + 1}? Answer:",
                "max_tokens": 8, "temperature": 0}  # fmt: skip
        with httpx.Client(timeout=600) as http:
            waits.append(stream_completion(http, url + "/v1/completions", body).ttft)

    threads = []
    for i in range(count):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(every)
    for t in threads:
        t.join()
    return waits


def request(i: int) -> dict[str, object]:
    """The batch's i-th request."""
    body = {"model": "gemma3", "prompt": f"Item {i}: a short story about the number {i}.", "max_tokens": 8,
            "temperature": 0}  # fmt: skip
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body}


def batch_status(http: httpx.Client, url: str, bid: str) -> dict[str, object]:
    answer: dict[str, object] = http.get(f"{url}/v1/batches/{bid}").json()
    return answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--interactive", type=int, default=60)
    parser.add_argument("--every", type=float, default=0.5)
    a = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with gemma_file() as gemma, tempfile.TemporaryDirectory() as home, httpx.Client(timeout=600) as http:
        proc = start_server(home, port, start_new_session=True)
        try:
            http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
            options = {"n_ctx": 1024, "threads": 2, "threads_batch": 2, "parallel": 2}
            http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
            http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
            interactive(url, 5, a.every)  # warm up
            alone = interactive(url, a.interactive, a.every)

            lines = b"".join(json.dumps(request(i)).encode() + b"\n" for i in range(a.requests))
            uploaded = http.post(
                url + "/v1/files", files={"file": ("b.jsonl", lines)}, data={"purpose": "batch"}
            )
            uploaded.raise_for_status()
            body = {
                "input_file_id": uploaded.json()["id"],
                "endpoint": "/v1/completions",
                "completion_window": "24h",
            }
            made = http.post(url + "/v1/batches", json=body)
            made.raise_for_status()
            bid = made.json()["id"]
            began = time.perf_counter()
            beside = interactive(url, a.interactive, a.every)
            status = batch_status(http, url, bid)
            counts: dict[str, int] = status["request_counts"]  # type: ignore[assignment]
            print(f"the batch answered {counts['completed'] + counts['failed']} of {a.requests} "
                  f"while the interactive clients ran ({time.perf_counter() - began:.0f} s)")  # fmt: skip
            while counts["completed"] + counts["failed"] < a.requests // 2:  # then the kill, halfway
                time.sleep(0.5)
                counts = batch_status(http, url, bid)["request_counts"]  # type: ignore[assignment]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the server and its engine, as a crash would
            proc.wait()
        killed_at = counts["completed"] + counts["failed"]
        proc = start_server(home, port, start_new_session=True)
        try:
            while (status := batch_status(http, url, bid))["status"] not in ENDED:
                time.sleep(1)
            elapsed = time.perf_counter() - began
            counts = status["request_counts"]  # type: ignore[assignment]
            ids: Counter[str] = Counter()
            for field in ("output_file_id", "error_file_id"):
                if status[field]:
                    content = http.get(f"{url}/v1/files/{status[field]}/content").content
                    ids.update(json.loads(line)["custom_id"] for line in content.splitlines())
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    lost = a.requests - len(ids)
    repeated = sum(n - 1 for n in ids.values() if n > 1)
    ratio = percentile(beside, 99) / percentile(alone, 99)
    print(f"interactive clients: {a.interactive}, one every {a.every} s, 8 tokens each")
    print(f"wait (time to first token) alone:       median {percentile(alone, 50) * 1000:.0f} ms, "
          f"p99 {percentile(alone, 99) * 1000:.0f} ms")  # fmt: skip
    print(f"wait beside the batch:                  median {percentile(beside, 50) * 1000:.0f} ms, "
          f"p99 {percentile(beside, 99) * 1000:.0f} ms")  # fmt: skip
    print(f"batch: {status['status']}, {counts['completed']} answered, {counts['failed']} failed, "
          f"{elapsed:.0f} s with a kill at about {killed_at} answered")  # fmt: skip
    print(f"after the kill and the restart: {lost} lost, {repeated} repeated")
    print(f"ratio (p99 wait beside the batch / alone): {ratio:.2f}")


if __name__ == "__main__":
    main()
