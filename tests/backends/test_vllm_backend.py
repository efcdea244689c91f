"""The vllm backend without running vLLM: which models go to it, its command line, its memory
estimate, and settings saved for it rather than the model's best backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import builders as b
from modelyard.backends import amx
from modelyard.backends.base import HOST, PORT, Placement
from modelyard.backends.registry import Backends, options_model
from modelyard.backends.vllm import CPU_KV_CACHE, VllmOptions
from modelyard.catalog.records import Adapter, Model, ModelSettings
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, InvalidSettings
from modelyard.estimate import GiB
from modelyard.formats.detect import inspect_path
from modelyard.library import Library
from modelyard.library.requests import ImportRequest

MiB = 1 << 20


def model(path: Path, **kw: object) -> Model:
    base = {"name": "m", "category": "chat", "format": "safetensors", "path": str(path)}
    return Model(**{**base, **kw})  # type: ignore[arg-type]


def test_gptq_goes_to_vllm_where_it_is_installed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gptq = model(tmp_path, quantization="GPTQ 4-bit g128", facts={"quant_method": "gptq"})
    full = model(tmp_path)
    embed = model(tmp_path, category="embedding")
    without = Backends.from_settings(Settings(home=home))
    with pytest.raises(EngineUnavailable, match="the vllm environment is not installed") as e:
        without.get("vllm").preflight()
    assert e.value.hint is not None
    assert "modelyard backends install vllm" in e.value.hint
    assert without.for_model(gptq).name == "transformers"  # vLLM first, but not installed
    b.managed_env(home, "vllm", "cpu")
    registry = Backends.from_settings(Settings(home=home))
    assert registry.for_model(gptq).name == "vllm"
    assert registry.for_model(full).name == "transformers"  # the model's own order
    assert registry.get("vllm").rank(embed) is not None  # after sentence-transformers
    assert registry.get("vllm").rank(model(tmp_path, format="gguf")) is None
    assert options_model(gptq) == ("vllm", VllmOptions)


def test_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    b.managed_env(home, "vllm", "cpu")
    vllm = Backends.from_settings(Settings(home=home)).get("vllm")
    m = model(tmp_path / "tiny")
    cpu = vllm.engine(m, VllmOptions(n_ctx=512, precision="float32", enforce_eager=True), Placement(), None)
    argv = cpu.argv
    assert argv[:3] == [str(home / "envs/vllm-cpu-1/bin/python"), "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--served-model-name") + 1] == "m"
    assert (argv[argv.index("--host") + 1], argv[argv.index("--port") + 1]) == (HOST, PORT)
    assert argv[argv.index("--max-model-len") + 1] == "512"
    assert argv[argv.index("--dtype") + 1] == "float32"
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(CPU_KV_CACHE)  # the CPU's default
    assert "--enforce-eager" in argv
    assert "--gpu-memory-utilization" not in argv
    assert "--enable-auto-tool-choice" not in argv  # forced calls need no parser
    config = argv[argv.index("--structured-outputs-config") + 1]
    assert json.loads(config) == {"backend": "xgrammar", "disable_any_whitespace": True}
    agents = VllmOptions(tool_call_parser="hermes", reasoning_parser="qwen3")
    agent_argv = vllm.engine(m, agents, Placement(), None).argv
    assert "--enable-auto-tool-choice" in agent_argv
    assert agent_argv[agent_argv.index("--tool-call-parser") + 1] == "hermes"
    assert agent_argv[agent_argv.index("--reasoning-parser") + 1] == "qwen3"
    assert cpu.slots == 256
    assert cpu.key_env == "VLLM_API_KEY"
    assert "CUDA_VISIBLE_DEVICES" not in cpu.env
    # its processes ask Linux for the AMX state first (vLLM's CPU kernels die of SIGILL without)
    assert cpu.env["PYTHONPATH"].split(os.pathsep)[0] == amx.FOLDER
    assert (Path(amx.FOLDER) / "sitecustomize.py").is_file()
    options = VllmOptions(tensor_parallel_size=2, max_num_seqs=64, enable_prefix_caching=False)
    gpu = vllm.engine(m, options, Placement(gpus=(0, 1, 2)), Adapter("style", "peft", "/a/style", 1))
    assert gpu.env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert gpu.argv[gpu.argv.index("--gpu-memory-utilization") + 1] == "0.9"
    assert gpu.argv[gpu.argv.index("--tensor-parallel-size") + 1] == "2"
    assert gpu.argv[gpu.argv.index("--lora-modules") + 1] == "m:style=/a/style"
    assert "--no-enable-prefix-caching" in gpu.argv
    assert gpu.slots == 64
    with pytest.raises(InvalidSettings, match="4 GPUs; this node has 3"):
        vllm.engine(m, VllmOptions(tensor_parallel_size=4), Placement(gpus=(0, 1, 2)), None)
    embed = vllm.engine(model(tmp_path, category="embedding"), VllmOptions(), Placement(), None)
    assert embed.argv[embed.argv.index("--runner") + 1] == "pooling"
    assert vllm.endpoints(model(tmp_path, category="embedding")) == frozenset({"embeddings"})
    assert vllm.served_name(m, "style") == "m:style"  # a request picks the LoRA by its model name


def test_the_estimate(tmp_path: Path) -> None:
    folder = b.write_hf_llama(tmp_path / "tiny", hidden=128, dtype="float32")
    registry = Backends.from_settings(Settings(home=tmp_path / "home"))
    vllm = registry.get("vllm")
    m = model(folder, context_length=2048, facts=inspect_path(folder).facts)
    kv = 64 * MiB
    fit = vllm.fit(m, VllmOptions(n_ctx=512, kv_cache_memory_bytes=kv), None, 32 * GiB, [])
    assert fit is not None
    ram = fit.estimate.ram
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert abs(ram.weights - weights) < 64 * 1024  # the safetensors header aside
    assert ram.kv_cache == kv
    assert fit.fits
    assert not vllm.fit(m, VllmOptions(kv_cache_memory_bytes=kv), None, 1 * GiB, []).fits  # the server itself
    # a KV cache smaller than one whole-context sequence: vLLM would not start
    tiny_kv = vllm.fit(m, VllmOptions(n_ctx=2048, kv_cache_memory_bytes=1 * MiB), None, 32 * GiB, [])
    assert not tiny_kv.fits
    on_gpu = vllm.fit(m, VllmOptions(), None, 32 * GiB, [24 * GiB])
    assert on_gpu.fits
    (gpu,) = on_gpu.estimate.vram
    assert gpu.total == int(24 * GiB * 0.9)  # vLLM takes its share of the GPU, the KV cache the rest
    assert not vllm.fit(m, VllmOptions(tensor_parallel_size=2), None, 32 * GiB, [24 * GiB]).fits


def test_settings_saved_for_another_backend(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        library = Library(store)
        folder = b.write_hf_llama(tmp_path / "tiny")
        library.import_model(ImportRequest(path=str(folder), name="tiny"))
        library.put_settings("tiny", {"n_ctx": 1024, "precision": "float32", "batch_size": 4})
        assert library.settings("tiny")[0] == "transformers"
        moved = library.put_settings("tiny", {"max_num_seqs": 8}, backend="vllm")
        assert moved.settings == ModelSettings(
            "vllm", {"n_ctx": 1024, "precision": "float32", "max_num_seqs": 8}
        )
        with pytest.raises(InvalidSettings, match="max_num_seqs"):
            library.put_settings("tiny", {"max_num_seqs": 8}, backend="transformers", merge=False)
        with pytest.raises(InvalidSettings, match=r"the llama\.cpp backend does not run 'tiny'"):
            library.put_settings("tiny", {}, backend="llama.cpp")
        assert library.settings("tiny")[0] == "vllm"  # unchanged by the refusals
    finally:
        store.close()
