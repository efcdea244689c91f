"""AutoGPTQ checkpoints of before quantization_config: recognised by their packed tensors, with
their quantize_config.json or without one (then wbits / groupsize / desc_act come from the
settings), mapped onto transformers' GPTQConfig; without the GPTQ kernels in the environment the
load says so and names vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import RunningServer
from modelyard.formats.hf import inspect_hf_model
from torch_models import CHATML, bpe_tokenizer


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


@pytest.mark.slow
def test_loads_take_the_settings_and_say_what_is_missing(server: RunningServer, tmp_path: Path) -> None:
    folder = write_old_gptq(tmp_path / "old-gptq")
    assert server.http.post("/api/models", json={"path": str(folder), "name": "old"}).status_code == 201
    settings = {"backend": "transformers", "options": {}}
    assert server.http.put("/api/models/old/settings", json=settings).status_code == 200
    refused = server.http.post("/api/models/old/load", json={})
    assert refused.status_code >= 400
    assert "set wbits (and groupsize, desc_act)" in refused.text
    settings["options"] = {"wbits": 4, "groupsize": 128, "desc_act": False}
    assert server.http.put("/api/models/old/settings", json=settings).status_code == 200
    kernels = server.http.post("/api/models/old/load", json={})
    assert kernels.status_code >= 400
    assert "GPTQ weights in transformers need their kernels" in kernels.text
    assert "vllm" in kernels.text
    assert server.http.get("/api/health").status_code == 200
