"""Fuzzing, the long run: the GGUF and safetensors readers on damaged files, and every route of
/api and /v1 with bodies shaped by its schema, mutated, or arbitrary, through the whole app and a
model whose engine answers (the cases of tests/fuzzing.py, of which CI runs 3,000 per route).

    .venv/bin/python bench/fuzz.py [--cases 100000]

/api runs with a fake engine and hubs that refuse (502 and 503 are their right answers), /v1 with
llama-server (MODELYARD_LLAMA_SERVER) and a tiny GGUF, where a 5xx is always a defect.

Goal: no 5xx of modelyard's own, no hang
(2 s per file, 20 s per request), bounded memory (256 MiB per file read; the process's peak is
printed), every error in its dialect's documented shape. The last line counts the cases and the
failures.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzzing import cuts, edits, endpoints, fuzz, mutate, sample, sandbox, survives
from modelyard.formats.gguf import read_gguf
from modelyard.formats.safetensors import read_safetensors


def run(name: str, cases: int, test: object) -> int:
    """Run a hypothesis test for ``cases`` examples; the failures it found (0 or 1: it stops)."""
    start = time.perf_counter()
    configured = settings(
        max_examples=cases,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=False,
    )
    failed = 0
    try:
        configured(test)()  # type: ignore[operator]
    except Exception as e:
        failed = 1
        print(f"{name}: FAILED: {e}")
    print(f"{name:<22} {cases:>8} cases in {time.perf_counter() - start:7.1f} s")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    cases = parser.parse_args().cases
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @given(edits=edits, cut=cuts)
        def gguf(edits: list[tuple[int, int]], cut: int | None) -> None:
            path = folder / "f.gguf"
            path.write_bytes(mutate(sample("gguf"), [(p % 4096, v) for p, v in edits], cut))
            survives(read_gguf, path)

        @given(edits=edits, cut=cuts)
        def safetensors(edits: list[tuple[int, int]], cut: int | None) -> None:
            path = folder / "f.safetensors"
            path.write_bytes(mutate(sample("safetensors"), edits, cut))
            survives(read_safetensors, path)

        failures += run("GGUF reader", cases, gguf)
        failures += run("safetensors reader", cases, safetensors)
        seed = random.randrange(2**32)
        for surface, engine in (("/api", "fake"), ("/v1", "llama")):
            with sandbox(folder / engine, engine) as client:
                routes = [e for e in endpoints(client.app) if e.path.startswith(surface)]
                name = f"{surface} routes ({len(routes)})"
                start = time.perf_counter()
                try:
                    statuses = fuzz(client, routes, cases, seed, bad_gateway=engine == "fake").statuses
                except AssertionError as e:
                    failures += 1
                    print(f"{name}: FAILED: {e}")
                    statuses = collections.Counter()
                print(f"{name:<22} {cases:>8} cases in {time.perf_counter() - start:7.1f} s")
                print(f"  answers ({engine} engine): {dict(sorted(statuses.items()))}")
    print(f"peak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"cases: {4 * cases} ({cases} per target, 4 targets); failures: {failures}")


if __name__ == "__main__":
    main()
