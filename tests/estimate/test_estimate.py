"""Memory estimates against reality: the engine process's measured memory after it served a
request, for gemma-3-270m at three contexts and a tiny model; the fit check before a load."""

from __future__ import annotations

import re
import time
from collections import namedtuple
from pathlib import Path

import pytest

from conftest import RunningServer, llama_server
from modelyard.estimate.llama import Config, estimate
from modelyard.formats.gguf import read_gguf
from runtime.conftest import add, load

pytestmark = pytest.mark.engine


MiB = 1 << 20
needs_llama_server = pytest.mark.skipif(
    llama_server() is None, reason="measured against llama-server (scripts/test builds it)"
)


def measured(server: RunningServer, name: str) -> int:
    """RSS of the engine after one request (every weight page has been read by then)."""
    server.http.post(
        "/v1/completions", json={"model": name, "prompt": "Hello there", "max_tokens": 8}
    ).raise_for_status()
    time.sleep(0.2)
    (inst,) = server.http.get("/api/instances").json()
    return int(inst["memory"])


@needs_llama_server
@pytest.mark.parametrize("n_ctx", [2048, 8192, 32768])
def test_gemma_estimate_matches_the_engine(server: RunningServer, gemma: Path, n_ctx: int) -> None:
    add(server, gemma, name="gemma3")
    server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": n_ctx, "threads": 2}})
    with_cache = server.http.get("/api/models/gemma3/estimate").json()
    # the prompt cache fills with use: at load it is empty, so the load is compared without it;
    # the default counts room for one context's KV cache (1 KiB a token a layer on its 18)
    options = {"n_ctx": n_ctx, "threads": 2, "cache_ram": 0}
    server.http.put("/api/models/gemma3/settings", json={"options": options})
    e = server.http.get("/api/models/gemma3/estimate").json()
    # the prompt cache is its own line, beside the context's KV cache, which it leaves as it is
    assert with_cache["ram"]["kv_cache"] == e["ram"]["kv_cache"]
    assert with_cache["ram"]["prompt_cache"] == max(64, -(-18 * 1024 * n_ctx // MiB)) * MiB
    assert e["ram"]["prompt_cache"] == 0
    assert with_cache["ram"]["total"] - e["ram"]["total"] == with_cache["ram"]["prompt_cache"]
    assert e["n_ctx"] == n_ctx
    load(server, "gemma3")
    real = measured(server, "gemma3")
    tolerance = max(0.05 * real, 32 * MiB)
    assert abs(e["ram"]["total"] - real) <= tolerance, (e["ram"], real)
    # the beginner's rule of thumb (file size + 2 GB) is far off on a model this small
    assert abs(e["rule_of_thumb"] - real) > 5 * abs(e["ram"]["total"] - real)


@needs_llama_server
def test_tiny_estimate_matches_the_engine(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    add(server, tiny_models["tiny-chat"])
    server.http.put("/api/models/tiny-chat/settings", json={"options": {"cache_ram": 0}})  # empty at load
    e = server.http.get("/api/models/tiny-chat/estimate").json()
    load(server, "tiny-chat")
    real = measured(server, "tiny-chat")
    assert abs(e["ram"]["total"] - real) <= max(0.05 * real, 32 * MiB), (e["ram"], real)


def test_kv_cache_follows_sliding_windows_and_gqa(gemma: Path) -> None:
    g = read_gguf(gemma)
    # gemma3: 3 of 18 layers are global, 1 KV head of 256 + 256 dims, f16: 1 KiB a cell a layer
    small = estimate([g], Config(n_ctx=2048)).ram.kv_cache
    big = estimate([g], Config(n_ctx=32768)).ram.kv_cache
    assert big - small == 3 * (32768 - 2048) * 1024
    assert small == (3 * 2048 + 15 * 1024) * 1024  # window 512 + ubatch 512 cells on SWA layers
    q8 = estimate([g], Config(n_ctx=32768, cache_type_k="q8_0", cache_type_v="q8_0")).ram.kv_cache
    assert q8 == pytest.approx(big * 34 / 64, rel=0.01)
    python = estimate([g], Config(n_ctx=32768, swa_full=True)).ram
    assert python.kv_cache == 18 * 32768 * 1024  # llama-cpp-python keeps full-size caches on every layer
    assert python.compute < 64 << 20  # no logits for every position unless asked for
    logits = estimate([g], Config(n_ctx=32768, swa_full=True, all_logits=True)).ram
    assert logits.compute > 32768 * 262144 * 4  # then an n_ctx x n_vocab score array: 32 GiB here


def test_gpu_offload_split(gemma: Path) -> None:
    g = read_gguf(gemma)
    cpu = estimate([g], Config(n_ctx=4096))
    half = estimate([g], Config(n_ctx=4096, n_gpu_layers=9, n_gpus=1))
    assert half.n_gpu_layers == 9
    assert 0 < half.vram[0].weights < cpu.ram.weights
    assert half.ram.weights + half.vram[0].weights == cpu.ram.weights
    two = estimate([g], Config(n_ctx=4096, n_gpu_layers=-1, n_gpus=2, tensor_split=(3, 1)))
    assert two.vram[0].weights > 2 * two.vram[1].weights
    assert two.vram[0].kv_cache + two.vram[1].kv_cache == cpu.ram.kv_cache


def test_a_load_that_will_not_fit_is_refused(
    server: RunningServer, gemma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(server, gemma, name="gemma3")
    server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 2048}})
    # this machine has plenty of memory: make it look like one with 200 MiB free
    import modelyard.runtime.local as local

    Memory = namedtuple("Memory", "available total used percent")
    monkeypatch.setattr(local.psutil, "virtual_memory", lambda: Memory(200 * MiB, 24 << 30, 0, 0))
    r = server.http.post("/api/models/gemma3/load", json={})
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "wont_fit"
    assert re.search(r"'gemma3' needs [0-9.]+ GiB of RAM \(weights 0.23, KV cache", error["message"])
    assert "with 0.20 GiB free" in error["message"]
    assert "smaller quantization" in error["hint"]
    assert "--force" in error["hint"]
    assert server.http.get("/api/instances").json() == []
    assert server.http.post("/api/models/gemma3/load", json={"force": True}).status_code == 200


def test_largest_gpu_offload_that_fits(gemma: Path) -> None:
    from modelyard.estimate.llama import max_gpu_layers

    g = read_gguf(gemma)
    cfg = Config(n_ctx=4096)
    everything = estimate([g], Config(n_ctx=4096, n_gpu_layers=-1, n_gpus=1)).vram[0].total
    assert max_gpu_layers([g], cfg, [everything]) == 19  # all 18 blocks and the output layer
    assert max_gpu_layers([g], cfg, [10 * MiB]) == 0
    some = max_gpu_layers([g], cfg, [everything // 2])
    assert 0 < some < 19
    assert estimate([g], Config(n_ctx=4096, n_gpu_layers=some, n_gpus=1)).vram[0].total <= everything // 2
    assert estimate([g], Config(n_ctx=4096, n_gpu_layers=some + 1, n_gpus=1)).vram[0].total > everything // 2
