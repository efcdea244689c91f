"""GPTQ and AWQ weights in transformers on gptqmodel's kernels, on the CPU: a tiny Llama quantized
by gptqmodel in the test answers through the gateway as gptqmodel answers in-process. AutoGPTQ
checkpoints of before quantization_config are recognised by their packed tensors, with their
quantize_config.json or without one (then wbits / groupsize / desc_act come from the settings);
without the kernels in the environment a load says so and names vLLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from conftest import RunningServer
from modelyard.estimate.hf import GPTQMODEL_RAM
from modelyard.formats.hf import inspect_hf_model
from modelyard.runners.standins import torchvision_stand_in
from torch_models import CHATML, bpe_tokenizer, write_chat_model, write_quantized

pytestmark = pytest.mark.engine


def write_old_gptq(folder: Path, quantize_config: dict[str, object] | None = None) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 128, "max_position_embeddings": 256}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    bpe_tokenizer(CHATML).save_pretrained(folder)
    if quantize_config is not None:
        (folder / "quantize_config.json").write_text(json.dumps(quantize_config))
    layer = "model.layers.0.self_attn.q_proj"
    save_file(
        {
            "model.embed_tokens.weight": np.zeros((128, 64), np.float16),
            f"{layer}.qweight": np.zeros((8, 64), np.int32),
            f"{layer}.qzeros": np.zeros((1, 8), np.int32),
            f"{layer}.scales": np.zeros((1, 64), np.float16),
            f"{layer}.g_idx": np.zeros((64,), np.int32),
        },
        str(folder / "model.safetensors"),
    )
    return folder


def test_old_gptq_checkpoints_are_recognised(tmp_path: Path) -> None:
    bare = inspect_hf_model(write_old_gptq(tmp_path / "bare"))
    assert (bare.facts["quant_method"], bare.quantization) == ("gptq", "GPTQ")
    assert any("set wbits, groupsize and desc_act" in w for w in bare.warnings)
    configured = inspect_hf_model(
        write_old_gptq(tmp_path / "configured", {"bits": 4, "group_size": 128, "desc_act": True})
    )
    assert configured.quantization == "GPTQ 4-bit g128"
    assert configured.facts["desc_act"] is True
    assert not configured.warnings


MESSAGES = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama (hidden 128: groups of 32 in every row) quantized to GPTQ and to AWQ."""
    root = tmp_path_factory.mktemp("quantized")
    base = write_chat_model(root / "base", hidden=128)
    return {method: write_quantized(root / method, base, method) for method in ("gptq", "awq")}


def in_process(folder: Path) -> str:
    """gptqmodel's own greedy answer to MESSAGES, at float32 (the runner's on the CPU)."""
    import torch

    with torchvision_stand_in():
        from gptqmodel import GPTQModel

    model = GPTQModel.load(str(folder), device="cpu", dtype=torch.float32)
    tok = model.tokenizer
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False
    )
    decoded: str = tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True)
    return decoded


def load(server: RunningServer, name: str, options: dict[str, object]) -> httpx.Response:
    """Load on transformers with these options (vLLM, where installed, comes first for GPTQ)."""
    settings = {"backend": "transformers", "options": options, "replace": True}
    assert server.http.put(f"/api/models/{name}/settings", json=settings).status_code == 200
    return server.http.post(f"/api/models/{name}/load", json={})


def health(server: RunningServer, name: str) -> dict[str, Any]:
    (instance,) = [i for i in server.http.get("/api/instances").json() if i["model"] == name]
    answer: dict[str, Any] = httpx.get(instance["url"] + "/health").json()
    return answer


def chat(server: RunningServer, name: str) -> str:
    body = {"model": name, "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    r = server.http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    text: str = r.json()["choices"][0]["message"]["content"]
    return text


@pytest.mark.slow
def test_gptq_and_awq_answer_as_gptqmodel_does(server: RunningServer, quantized: dict[str, Path]) -> None:
    for method, folder in quantized.items():
        assert server.http.post("/api/models", json={"path": str(folder), "name": method}).status_code == 201
        r = load(server, method, {})
        assert r.status_code == 200, r.text
        facts = health(server, method)
        assert facts["quantized_layers"]  # gptqmodel's kernel classes, not plain Linear
        assert all(name.startswith("Torch") for name in facts["quantized_layers"])
        q = facts["quantization"]
        assert (q["quant_method"], q["bits"], q["group_size"]) == (method, 4, 32)
        answer = chat(server, method)
        assert answer.strip()
        assert answer == in_process(folder), method
        # the estimate counts gptqmodel's kernels, which the engine imported: what the engine
        # holds is under the estimate, and over it without that share
        (instance,) = [i for i in server.http.get("/api/instances").json() if i["model"] == method]
        ram = server.http.get(f"/api/models/{method}/estimate").json()["ram"]
        assert ram["total"] - GPTQMODEL_RAM < instance["memory"] <= ram["total"]
    assert server.http.get("/api/health").status_code == 200


@pytest.mark.slow
def test_old_gptq_takes_its_settings(
    server: RunningServer, quantized: dict[str, Path], tmp_path: Path
) -> None:
    """The same GPTQ weights without quantization_config or quantize_config.json: a load says
    to set wbits; with wbits, groupsize and desc_act set it answers as the model with its config."""
    import shutil

    old = shutil.copytree(quantized["gptq"], tmp_path / "old-gptq")
    config = json.loads((old / "config.json").read_text())
    del config["quantization_config"]
    (old / "config.json").write_text(json.dumps(config))
    (old / "quantize_config.json").unlink(missing_ok=True)
    assert server.http.post("/api/models", json={"path": str(old), "name": "old"}).status_code == 201
    refused = load(server, "old", {})
    assert refused.status_code >= 400
    assert "set wbits (and groupsize, desc_act)" in refused.text
    r = load(server, "old", {"wbits": 4, "groupsize": 32, "desc_act": False})
    assert r.status_code == 200, r.text
    q = health(server, "old")["quantization"]
    assert (q["quant_method"], q["bits"], q["group_size"], q["desc_act"]) == ("gptq", 4, 32, False)
    assert chat(server, "old") == in_process(quantized["gptq"])


def test_without_the_kernels_a_load_names_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from modelyard.errors import EngineError
    from modelyard.runners.devices import gptq_kernels

    monkeypatch.setitem(sys.modules, "gptqmodel", None)  # as if not installed: its import fails
    with pytest.raises(EngineError) as e:
        gptq_kernels("awq")
    assert "AWQ weights in transformers need gptqmodel's kernels" in str(e.value)
    assert "vllm" in (e.value.hint or "")
