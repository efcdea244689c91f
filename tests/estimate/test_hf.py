"""Estimates for safetensors / Hugging Face folders: dtypes, precision, quantization, KV cache."""

from __future__ import annotations

from pathlib import Path

import builders as b
from conftest import RunningServer
from modelyard.estimate.hf import TORCH_RAM, HFConfig, estimate_folder
from modelyard.formats.detect import inspect_path
from modelyard.formats.safetensors import read_safetensors
from runtime.conftest import add


def test_weights_follow_precision_and_quantization(tmp_path: Path) -> None:
    folder = b.write_hf_llama(tmp_path / "m")  # stored as F16
    facts = inspect_path(folder).facts
    params = read_safetensors(folder / "model.safetensors").parameter_count
    auto = estimate_folder(folder, facts, HFConfig(n_ctx=1024))
    assert auto.ram.weights == 2 * params
    assert auto.ram.overhead == TORCH_RAM
    full = estimate_folder(folder, facts, HFConfig(n_ctx=1024, precision="float32"))
    assert full.ram.weights == 4 * params
    nf4 = estimate_folder(folder, facts, HFConfig(n_ctx=1024, quantization="nf4"))
    assert nf4.ram.weights < auto.ram.weights
    # 2 layers x 2 KV heads x 16 dims x 1024 tokens x K and V x 2 bytes
    assert auto.ram.kv_cache == 2 * 2 * 2 * 16 * 1024 * 2
    gpu = estimate_folder(folder, facts, HFConfig(n_ctx=1024, device="cuda"))
    assert gpu.vram[0].weights == auto.ram.weights
    assert gpu.ram.total == TORCH_RAM


def test_gptq_stays_packed(tmp_path: Path) -> None:
    extra = {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}
    folder = b.write_hf_llama(tmp_path / "q", extra=extra)
    facts = inspect_path(folder).facts
    size = (folder / "model.safetensors").stat().st_size
    e = estimate_folder(folder, facts, HFConfig(n_ctx=512, precision="float32"))
    assert e.ram.weights <= size  # packed tensors are not widened by the precision


def test_api_estimate_for_a_folder(server: RunningServer, tmp_path: Path) -> None:
    add(server, b.write_hf_llama(tmp_path / "hfm"))
    e = server.http.get("/api/models/hfm/estimate", params={"n_ctx": 1024, "precision": "float32"}).json()
    assert e["runtime"] == "transformers"
    assert e["n_ctx"] == 1024
    assert e["fits"] is True
    assert e["ram"]["total"] > TORCH_RAM
    r = server.http.get("/api/models/hfm/estimate", params={"precision": "float8"})
    assert r.status_code == 400
    assert "precision" in r.json()["error"]["message"]
