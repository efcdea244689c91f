"""Speculative decoding on the CPU: decode tokens/s of the same greedy completion through
modelyard without a draft (the peer: plain llama-server decoding), with a draft model (gemma
drafting for itself: every draft is right, so this measures the mechanism's best case on this
machine, not a real small draft) and with n-gram drafting, and the acceptance rates the gateway
reports. gemma-3-270m Q4_K_M, 2 threads.

    .venv/bin/python bench/speculative.py [--runs 3] [--tokens 128]

The last line is the ratio of tokens/s with the draft model to without.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import httpx

from common import gemma_file, modelyard_server

PROMPT = "List the numbers from one to one hundred, in words, separated by commas: one, two, three,"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    a = parser.parse_args()
    with (
        gemma_file() as gemma, tempfile.TemporaryDirectory() as tmp, modelyard_server() as url,
        httpx.Client(timeout=600) as http,
    ):  # fmt: skip
        draft = Path(tmp) / "gemma-draft.gguf"
        os.link(gemma, draft)
        for name, path in (("gemma3", gemma), ("gemma3-draft", draft)):
            http.post(url + "/api/models", json={"path": str(path), "name": name}).raise_for_status()
        base = {"n_ctx": 2048, "threads": 2, "threads_batch": 2, "parallel": 1}
        body = {
            "model": "gemma3",
            "prompt": PROMPT,
            "max_tokens": a.tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        rates: dict[str, float] = {}
        for label, extra in (
            ("no draft", {}),
            ("draft model", {"draft_model": "gemma3-draft", "draft_max": 8}),
            ("n-grams", {"ngram_speculation": True}),
        ):
            settings = {"options": {**base, **extra}, "replace": True}
            http.put(url + "/api/models/gemma3/settings", json=settings).raise_for_status()
            http.post(url + "/api/models/gemma3/load", json={}).raise_for_status()
            http.post(url + "/v1/completions", json={**body, "max_tokens": 8})  # warm
            runs = [http.post(url + "/v1/completions", json=body).json() for _ in range(a.runs)]
            # the engine's own decode rate: several tokens may come out of one step
            rates[label] = statistics.median(r["timings"]["predicted_per_second"] for r in runs)
            (instance,) = http.get(url + "/api/instances").json()
            accepted = instance["draft_acceptance"]
            shown = "-" if accepted is None else f"{accepted:.0%}"
            print(f"{label:<12} {rates[label]:7.1f} tokens/s   drafts accepted: {shown}")
    print(f"ratio (tokens/s with the draft model / without): {rates['draft model'] / rates['no draft']:.2f}")


if __name__ == "__main__":
    main()
