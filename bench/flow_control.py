"""Flow control: five keys each send one request at a time (the next as soon as the last is
answered), alone and then while one heavy key keeps 100 requests going (100 clients that send
again as soon as they are answered, and after the Retry-After of a 429). The light keys' time
to first token, alone and beside the heavy key, and what the heavy key was answered.
gemma-3-270m Q4_K_M on llama-server, 2 slots (and 2 more in its own queue), 2 threads, 16
tokens per request; the queue holds 50.

    .venv/bin/python bench/flow_control.py [--requests 12]

Goal: the five keys' p99 time to first token beside the heavy key <= 2x their p99 alone; the
heavy key gets 429s, never a 503. The last line is that ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter

import httpx

from common import gemma_file, modelyard_server

BODY = {"model": "gemma3", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0,
        "ignore_eos": True, "stream": True}  # fmt: skip
LIGHT = 5
HEAVY = 100


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ask(http: httpx.Client, url: str, secret: str) -> tuple[int, float, str | None]:
    """One streamed completion: its status, its time to first token, its Retry-After."""
    start = time.perf_counter()
    headers = {"Authorization": f"Bearer {secret}"}
    with http.stream("POST", url + "/v1/completions", json=BODY, headers=headers) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, time.perf_counter() - start, r.headers.get("Retry-After")
        first = None
        for line in r.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:]).get("choices"):
                first = first or time.perf_counter()
    return 200, (first or time.perf_counter()) - start, None


def light(url: str, secrets: list[str], requests: int) -> list[float]:
    """The five keys, each one request at a time: their times to first token."""
    ttfts: list[float] = []
    lock = threading.Lock()

    def run(secret: str) -> None:
        with httpx.Client(timeout=600) as http:
            for _ in range(requests):
                status, ttft, _ = ask(http, url, secret)
                if status != 200:
                    raise SystemExit(f"a light key's request was answered {status}")
                with lock:
                    ttfts.append(ttft)

    threads = [threading.Thread(target=run, args=(s,)) for s in secrets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ttfts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12, help="requests of each light key")
    a = parser.parse_args()
    with gemma_file() as gemma, modelyard_server() as url, httpx.Client(timeout=600) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        options = {"n_ctx": 1024, "threads": 2, "threads_batch": 2, "parallel": 2}
        http.put(url + "/api/models/gemma3/settings", json={"options": options}).raise_for_status()
        http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
        admin = http.post(url + "/api/keys", json={"name": "admin", "scope": "admin"}).json()["secret"]
        http.headers["Authorization"] = f"Bearer {admin}"
        secrets = [
            http.post(url + "/api/keys", json={"name": f"light{i}"}).json()["secret"] for i in range(LIGHT)
        ]
        heavy_secret = http.post(url + "/api/keys", json={"name": "heavy"}).json()["secret"]
        light(url, secrets[:1], 2)  # the engine warm

        alone = light(url, secrets, a.requests)

        stop = threading.Event()
        answers: Counter[int] = Counter()
        lock = threading.Lock()

        def heavy() -> None:
            with httpx.Client(timeout=600) as client:
                while not stop.is_set():
                    status, _, retry = ask(client, url, heavy_secret)
                    with lock:
                        answers[status] += 1
                    if status == 429:
                        stop.wait(float(retry or 1))

        clients = [threading.Thread(target=heavy) for _ in range(HEAVY)]
        for t in clients:
            t.start()
        time.sleep(5)  # the heavy key's requests fill the queue
        beside = light(url, secrets, a.requests)
        stop.set()
        for t in clients:
            t.join()
    for name, ttfts in (("alone", alone), ("beside", beside)):
        print(f"light keys {name:>6}: {len(ttfts)} requests; time to first token p50 "
              f"{percentile(ttfts, 50):.2f} s, p99 {percentile(ttfts, 99):.2f} s, mean {statistics.mean(ttfts):.2f} s")  # fmt: skip
    print(f"heavy key: answered {dict(sorted(answers.items()))}")
    if answers[503]:
        print(f"the heavy key got {answers[503]} 503s")
    print(f"ratio (light keys' p99 time to first token, beside the heavy key / alone): "
          f"{percentile(beside, 99) / percentile(alone, 99):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
