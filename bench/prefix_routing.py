"""Cache-aware routing: 40 simulated users on two llama-server replicas, each user's chat opening
with one of 8 system prompts of ~1,500 tokens (5 users share each), then sending follow-ups that
carry the conversation so far. The same clients run against modelyard with the least-loaded
routing (MODELYARD_ROUTING=least-loaded: the fewest requests in flight, the replica holding the
prompt on a tie) and with the cache-aware routing (the default), each on a fresh server with
the same replicas. Each replica's engine keeps about five prompts (its two slots and a 128 MiB
prompt cache), so where a conversation goes decides whether its prompt is computed again.
gemma-3-270m Q4_K_M, 1 thread per replica, 2 slots each, --swa-full (see ARGS).

    .venv/bin/python bench/prefix_routing.py [--users 40] [--turns 3] [--apart 0.25] [--think 0.5,2]

Goal: p90 time to first token >= 5x better with the cache-aware routing. The last line is
that ratio (least-loaded p90 / cache-aware p90).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx

from common import gemma_file, modelyard_server

SUBJECTS = ("harbour", "orchard", "library", "foundry", "observatory", "vineyard", "archive", "mill")
WORDS = ("amber", "copper", "slate", "willow", "cinder", "harrow", "quartz", "lantern", "meadow", "tidal")
QUESTIONS = ("What comes first?", "Which rule matters most?", "Summarise rule 12.", "Who keeps the keys?",
             "What happens at dusk?", "Name two exceptions.")  # fmt: skip
OPTIONS = {"n_ctx": 4096, "threads": 1, "threads_batch": 1, "parallel": 2, "cache_ram": 64,
           "chat_template": "chatml"}  # fmt: skip
# gemma-3's sliding-window layers keep only their window: without a full-size cache for them,
# llama-server can reuse a cached prompt only whole, never the system prompt it shares with others
ARGS = ["--swa-full"]


def system_prompt(subject: str) -> str:
    """About 1,500 tokens of rules about ``subject`` (each line differs)."""
    rng = random.Random(subject)
    lines = [
        f"Rule {i} of the {subject}: the {rng.choice(WORDS)} {rng.choice(WORDS)} door stays "
        f"{rng.choice(('open', 'shut', 'locked'))} until {rng.randint(1, 12)} o'clock, "
        f"and {rng.randint(2, 99)} {rng.choice(WORDS)} crates go to bay {rng.randint(1, 40)}."
        for i in range(42)
    ]
    return f"You are the keeper of the {subject}. Answer briefly.\n" + "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Run:
    ttfts: list[float] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Pace:
    """Users arrive ``apart`` seconds after one another and read each answer for ``think``
    (least, most) seconds."""

    apart: float = 0.25
    think: tuple[float, float] = (0.5, 2.0)


def user(url: str, index: int, turns: int, run: Run, pace: Pace) -> None:
    """One user: a conversation of ``turns`` questions, a pause to read each answer."""
    rng = random.Random(index)
    messages = [{"role": "system", "content": system_prompt(SUBJECTS[index % len(SUBJECTS)])}]
    time.sleep(index * pace.apart)
    with httpx.Client(timeout=1800) as http:
        for _ in range(turns):
            messages.append({"role": "user", "content": rng.choice(QUESTIONS)})
            body = {"model": "gemma3", "messages": messages, "max_tokens": 8, "temperature": 0,
                    "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
            start = time.perf_counter()
            first = None
            text = []
            try:
                with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
                    r.raise_for_status()
                    for line in r.iter_lines():
                        if not line.startswith("data: {"):
                            continue
                        event = json.loads(line[6:])
                        if event.get("usage"):
                            with run.lock:
                                run.prompt_tokens.append(event["usage"]["prompt_tokens"])
                        for choice in event.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content")
                            if piece:
                                first = first or time.perf_counter()
                                text.append(piece)
            except httpx.HTTPError as e:
                with run.lock:
                    run.errors.append(str(e))
                return
            with run.lock:
                run.ttfts.append((first or time.perf_counter()) - start)
            messages.append({"role": "assistant", "content": "".join(text)})
            time.sleep(rng.uniform(*pace.think))


def phase(routing: str, users: int, turns: int, pace: Pace) -> tuple[Run, float, str]:
    """The clients against a fresh server routing by ``routing``: what they saw, the time it
    took, and the server's routing metrics."""
    settings = {"MODELYARD_ROUTING": routing, "MODELYARD_QUEUE_TIMEOUT": "0", "MODELYARD_QUEUE_SIZE": "200"}
    with gemma_file() as gemma, modelyard_server(settings=settings) as url, httpx.Client(timeout=600) as http:
        http.post(url + "/api/models", json={"path": str(gemma), "name": "gemma3"}).raise_for_status()
        deployment = {"model": "gemma3", "replicas": 2, "settings": OPTIONS, "args": ARGS}
        http.post(url + "/api/deployments", json=deployment).raise_for_status()
        run = Run()
        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(url, i, turns, run, pace)) for i in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - start
        metrics = http.get(url + "/metrics").text
    lines = [
        line
        for line in metrics.splitlines()
        if line.startswith(("modelyard_prefix_", "modelyard_cached_prompt_tokens_total"))
    ]
    return run, took, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--apart", type=float, default=0.25, help="seconds between users' arrivals")
    parser.add_argument("--think", default="0.5,2", help="LEAST,MOST seconds a user reads an answer")
    a = parser.parse_args()
    least, most = (float(x) for x in a.think.split(","))
    pace = Pace(a.apart, (least, most))
    p90 = {}
    for routing in ("least-loaded", "prefix"):
        run, took, metrics = phase(routing, a.users, a.turns, pace)
        if run.errors:
            raise SystemExit(f"{routing}: {len(run.errors)} requests failed: {run.errors[0]}")
        t = run.ttfts
        p90[routing] = percentile(t, 90)
        print(f"{routing:>12}: {len(t)} requests in {took:.0f} s; time to first token p50 "
              f"{percentile(t, 50):.2f} s, p90 {p90[routing]:.2f} s, p99 {percentile(t, 99):.2f} s, "
              f"mean {statistics.mean(t):.2f} s")  # fmt: skip
        print(f"{'':>12}  prompts {min(run.prompt_tokens)}-{max(run.prompt_tokens)} tokens")
        print("\n".join(f"{'':>12}  {line}" for line in metrics.splitlines()))
    print(
        f"ratio (p90 time to first token, least-loaded / cache-aware): {p90['least-loaded'] / p90['prefix']:.2f}"
    )


if __name__ == "__main__":
    main()
