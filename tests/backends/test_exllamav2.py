"""The exllamav2 backend without a GPU: which models go to it, how its options map onto
exllamav2's own load and sampler arguments, its memory estimate, and that without an NVIDIA GPU
a load fails at once saying why. (Loading a model needs CUDA: see docs/engines.md.)"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import builders as b
from conftest import RunningServer
from modelyard.backends import environments
from modelyard.backends.base import Placement
from modelyard.backends.exllamav2 import ExLlamaV2Options
from modelyard.backends.registry import Backends
from modelyard.catalog.records import Adapter, Model
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, InvalidSettings, Unsupported
from modelyard.formats.detect import inspect_path
from modelyard.runners.exl2 import finish_reason, load_plan, sampler_settings
from modelyard.runners.textgen import Sampling

EXL2 = {"quantization_config": {"quant_method": "exl2", "bits": 4.0}}


def model(path: Path, **kw: object) -> Model:
    base = {"name": "m", "category": "chat", "format": "safetensors", "path": str(path)}
    return Model(**{**base, **kw})  # type: ignore[arg-type]


def sampling(**kw: Any) -> Sampling:
    base: dict[str, Any] = {
        "max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "top_k": None, "min_p": None,
        "repetition_penalty": None, "presence_penalty": 0.0, "frequency_penalty": 0.0, "stop": [],
        "seed": None,
    }  # fmt: skip
    return Sampling(**{**base, **kw})


def test_without_an_nvidia_gpu_a_load_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environments, "has_nvidia", lambda: False)
    registry = Backends.from_settings(Settings(home=tmp_path / "home"))
    exl2 = model(tmp_path, quantization="EXL2 4.0bpw", facts={"quant_method": "exl2"})
    chosen = registry.for_model(exl2)  # the only engine for EXL2, though it cannot run here
    assert chosen.name == "exllamav2"
    with pytest.raises(EngineUnavailable, match="only on NVIDIA GPUs") as e:
        chosen.preflight()
    assert e.value.hint is not None
    assert "GGUF" in e.value.hint
    # a GPTQ model goes to an engine that runs here
    gptq = model(tmp_path, quantization="GPTQ 4-bit", facts={"quant_method": "gptq"})
    assert registry.for_model(gptq).name == "transformers"
    with pytest.raises(Unsupported, match="CUDA kernels only"):
        chosen.install("cpu", lambda *a: None)


def test_where_there_is_one_it_runs_the_runner_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environments, "has_nvidia", lambda: True)
    home = tmp_path / "home"
    missing = Backends.from_settings(Settings(home=home)).get("exllamav2")
    with pytest.raises(EngineUnavailable, match="the exllamav2 environment is not installed") as e:
        missing.preflight()
    assert e.value.hint is not None
    assert "--variant cuda" in e.value.hint
    b.managed_env(home, "exllamav2", "cuda")
    registry = Backends.from_settings(Settings(home=home))
    folder = b.write_hf_llama(tmp_path / "exl2", extra=EXL2)
    exl2 = model(folder, quantization="EXL2 4.0bpw", facts={"quant_method": "exl2"})
    gptq = model(folder, quantization="GPTQ 4-bit", facts={"quant_method": "gptq"})
    backend = registry.for_model(exl2)
    assert registry.for_model(gptq).name == "exllamav2"  # before transformers, vLLM not installed
    assert backend.endpoints(exl2) == frozenset({"chat", "completions"})
    assert backend.rank(model(folder, category="embedding")) is None
    options = ExLlamaV2Options(n_ctx=8192, gpu_split=[20, 24], cache_4bit=True)
    spec = backend.engine(exl2, options, Placement(gpus=(0, 1)), None)
    argv = spec.argv
    assert argv[0] == str(home / "envs" / "exllamav2-cuda-1" / "bin" / "python")
    assert argv[argv.index("--task") + 1] == "exl2"
    sent = json.loads(argv[argv.index("--options") + 1])
    assert (sent["n_ctx"], sent["gpu_split"], sent["cache_4bit"]) == (8192, [20.0, 24.0], True)
    assert ExLlamaV2Options.model_validate(sent) == options  # the runner reads back what was meant
    with pytest.raises(Unsupported, match="no LoRA adapters"):
        backend.engine(exl2, options, Placement(), Adapter("a", "peft", str(tmp_path), 1))


def test_options_map_onto_exllamav2_load_arguments() -> None:
    # max_seq_len from the model's metadata, an fp16 cache, autosplit, paged with flash-attn
    plan = load_plan(ExLlamaV2Options(), model_max_seq_len=4096, flash_attn=True)
    assert (plan.max_seq_len, plan.cache, plan.gpu_split, plan.paged) == (4096, "ExLlamaV2Cache", None, True)
    assert (plan.cache_tokens, plan.max_batch_size) == (4 * 4096, 4)  # room for `parallel` contexts
    plan = load_plan(
        ExLlamaV2Options(n_ctx=1000, cache_8bit=True, gpu_split=[10.5, 12], parallel=2, cfg_cache=True),
        model_max_seq_len=4096,
        flash_attn=True,
    )
    assert (plan.max_seq_len, plan.cache, plan.gpu_split) == (1000, "ExLlamaV2Cache_Q8", [10.5, 12.0])
    # two requests, each with its CFG negative prompt beside it, in whole 256-token pages
    assert (plan.cache_tokens, plan.max_batch_size) == (4096, 4)
    assert load_plan(ExLlamaV2Options(cache_4bit=True), 2048, True).cache == "ExLlamaV2Cache_Q4"
    # without flash-attn the generator is not paged: one request at a time, and no CFG
    plan = load_plan(ExLlamaV2Options(no_flash_attn=True, parallel=8), 2048, flash_attn=True)
    assert (plan.paged, plan.no_flash_attn, plan.max_batch_size, plan.cache_tokens) == (False, True, 1, 2048)
    assert not load_plan(ExLlamaV2Options(), 2048, flash_attn=False).paged
    with pytest.raises(InvalidSettings, match="cfg_cache needs flash-attn"):
        load_plan(ExLlamaV2Options(cfg_cache=True), 2048, flash_attn=False)


def test_options_refuse_what_exllamav2_cannot_do() -> None:
    with pytest.raises(ValueError, match="cache_8bit and cache_4bit"):
        ExLlamaV2Options(cache_8bit=True, cache_4bit=True)
    with pytest.raises(ValueError, match="gpu_split"):
        ExLlamaV2Options(gpu_split=[0, 12])
    with pytest.raises(ValueError, match="no_such_option"):
        ExLlamaV2Options(no_such_option=True)  # type: ignore[call-arg]


def test_sampling_maps_onto_exllamav2_sampler_settings() -> None:
    greedy = sampler_settings(sampling())
    # exllamav2's own greedy(): top_k 1; no repetition penalty (its default is 1.025)
    assert greedy == {"temperature": 1.0, "top_k": 1, "top_p": 0.0, "token_repetition_penalty": 1.0}
    sampled = sampler_settings(
        sampling(temperature=0.7, top_p=0.9, top_k=40, min_p=0.05, repetition_penalty=1.1,
                 presence_penalty=0.5, frequency_penalty=0.25, guidance_scale=1.5)
    )  # fmt: skip
    assert sampled == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "token_repetition_penalty": 1.1,
        "token_presence_penalty": 0.5, "token_frequency_penalty": 0.25, "cfg_scale": 1.5,
    }  # fmt: skip
    assert sampler_settings(sampling(temperature=1.0))["top_k"] == 0  # 0: off in exllamav2
    assert "cfg_scale" not in sampler_settings(sampling(guidance_scale=1.0))
    assert (finish_reason("max_new_tokens"), finish_reason("stop_string"), finish_reason("stop_token")) == (
        "length", "stop", "stop",
    )  # fmt: skip


def test_memory_estimate_counts_the_cache_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environments, "has_nvidia", lambda: True)
    folder = b.write_hf_llama(tmp_path / "exl2", extra=EXL2)
    registry = Backends.from_settings(Settings(home=tmp_path / "home"))
    exl2 = model(folder, context_length=4096, facts=inspect_path(folder).facts)
    backend = registry.get("exllamav2")
    gib = 1 << 30

    def kv(**options: Any) -> int:
        fit = backend.fit(exl2, ExLlamaV2Options(**options), None, 64 * gib, [80 * gib])
        assert fit is not None
        assert fit.fits
        return fit.estimate.vram[0].kv_cache

    fp16, q8, q4 = kv(), kv(cache_8bit=True), kv(cache_4bit=True)
    assert fp16 > 0
    assert q8 == pytest.approx(fp16 * 1.0625 / 2)
    assert q4 == pytest.approx(fp16 * 0.5625 / 2)
    assert kv(cfg_cache=True) == 2 * fp16  # the negative prompt's cache beside the prompt's
    assert kv(n_ctx=2048) == fp16 // 2


@pytest.mark.skipif(environments.has_nvidia(), reason="this machine has an NVIDIA GPU")
def test_loading_an_exl2_model_here_says_why_it_cannot(server: RunningServer, zoo: Path) -> None:
    """This machine has no NVIDIA GPU: the load is refused at once, nothing starts."""
    path = str(zoo / "hf/tiny-6.5bpw-exl2")
    assert server.http.post("/api/models", json={"path": path, "name": "exl2"}).status_code == 201
    started = time.monotonic()
    r = server.http.post("/api/models/exl2/load", json={})
    assert time.monotonic() - started < 5
    assert r.status_code == 503, r.text
    assert "ExLlamaV2 runs only on NVIDIA GPUs" in r.json()["error"]["message"]
    assert server.http.get("/api/instances").json() == []
    shown = server.http.get("/api/models/exl2").json()
    assert [x["name"] for x in shown["loaders_why"]] == ["exllamav2"]
