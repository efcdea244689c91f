"""The transformers loader's options (the text-generation-webui manual's list) as the engine
shows them on its /health, and answers equal to transformers in-process with the same settings:
bitsandbytes 8-bit and 4-bit (nf4, fp4, double quantization, compute dtype) on the CPU, memory
caps with disk offload, RoPE scaling (NTK alpha, linear compression, base)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningServer
from torch_models import write_chat_model

pytestmark = pytest.mark.engine


MESSAGES = [{"role": "user", "content": "hello world"}]


def load(server: RunningServer, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Load with these options; the engine's own /health."""
    r = server.http.put(f"/api/models/{name}/settings", json={"options": options, "replace": True})
    assert r.status_code == 200, r.text
    r = server.http.post(f"/api/models/{name}/load", json={})
    assert r.status_code == 200, r.text
    (instance,) = [i for i in server.http.get("/api/instances").json() if i["model"] == name]
    health: dict[str, Any] = httpx.get(instance["url"] + "/health").json()
    return health


def chat(server: RunningServer, name: str, **more: Any) -> str:
    body = {"model": name, "messages": MESSAGES, "max_tokens": 8, "temperature": 0, **more}
    r = server.http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    text: str = r.json()["choices"][0]["message"]["content"]
    return text


def in_process(folder: Path, negative: str | None = None, **kwargs: Any) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    text = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    guidance = {}
    if negative is not None:  # classifier-free guidance
        neg = tok(negative, return_tensors="pt")["input_ids"]
        guidance = {"guidance_scale": kwargs.pop("guidance_scale"), "negative_prompt_ids": neg}
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, **guidance
        )
    decoded: str = tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True)
    return decoded


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny chat model with hidden size 128: bitsandbytes' 4-bit blocks want 64 values a row."""
    return write_chat_model(tmp_path_factory.mktemp("wide") / "tiny-wide", hidden=128)


@pytest.mark.slow
def test_bitsandbytes_on_the_cpu(server: RunningServer, wide: Path) -> None:
    import torch
    from transformers import BitsAndBytesConfig

    folder = wide
    assert server.http.post("/api/models", json={"path": str(folder), "name": "tiny"}).status_code == 201
    health = load(server, "tiny", {"quantization": "int8"})
    assert health["quantized_layers"] == ["Linear8bitLt"]
    assert health["quantization"]["load_in_8bit"] is True
    expected = in_process(
        folder, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map={"": "cpu"}
    )
    assert chat(server, "tiny") == expected
    health = load(server, "tiny", {"quantization": "nf4", "double_quant": True, "compute_dtype": "float32"})
    assert health["quantized_layers"] == ["Linear4bit"]
    q = health["quantization"]
    assert (q["bnb_4bit_quant_type"], q["bnb_4bit_use_double_quant"], q["bnb_4bit_compute_dtype"]) == (
        "nf4", True, "float32",
    )  # fmt: skip
    nf4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.float32)  # fmt: skip
    assert chat(server, "tiny") == in_process(folder, quantization_config=nf4, device_map={"": "cpu"})
    health = load(server, "tiny", {"quantization": "int4"})
    assert health["quantization"]["bnb_4bit_quant_type"] == "fp4"


@pytest.mark.slow
def test_memory_caps_disk_offload_and_rope(
    server: RunningServer, torch_zoo: dict[str, Path], tmp_path: Path
) -> None:
    folder = torch_zoo["chat"]
    assert server.http.post("/api/models", json={"path": str(folder), "name": "tiny"}).status_code == 201
    plain = load(server, "tiny", {})
    assert plain["device_map"] == {}
    theta = plain["rope"]["rope_theta"]
    answer = chat(server, "tiny")
    # a CPU cap smaller than the model: what does not fit goes to the disk folder, and it still answers the same
    offload = tmp_path / "offload"
    health = load(server, "tiny", {"cpu_memory": 0.0001, "disk_offload": str(offload)})
    assert health["device_map"].get("disk", 0) > 0  # (safetensors weights are read from their file)
    assert chat(server, "tiny") == answer
    # RoPE: NTK alpha raises the base by alpha^(d/(d-2)) (head dim 8 here); linear compression
    health = load(server, "tiny", {"alpha_value": 2.0, "compress_pos_emb": 4})
    assert health["rope"]["rope_theta"] == pytest.approx(theta * 2.0 ** (8 / 6))
    assert (health["rope"]["rope_type"], health["rope"]["factor"]) == ("linear", 4.0)
    assert load(server, "tiny", {"rope_freq_base": 50_000})["rope"]["rope_theta"] == 50_000


@pytest.mark.slow
def test_classifier_free_guidance(server: RunningServer, torch_zoo: dict[str, Path]) -> None:
    """A request's guidance_scale and negative_prompt (text-generation-webui's CFG) give what
    transformers gives with the same guidance in-process; without guidance_scale a negative
    prompt is refused."""
    folder = torch_zoo["chat"]
    assert server.http.post("/api/models", json={"path": str(folder), "name": "tiny"}).status_code == 201
    load(server, "tiny", {})
    plain = chat(server, "tiny")
    guided = chat(server, "tiny", guidance_scale=3.0, negative_prompt="goodbye moon")
    assert guided == in_process(folder, negative="goodbye moon", guidance_scale=3.0)
    assert guided != plain  # the guidance changed the greedy answer of this model
    assert chat(server, "tiny", guidance_scale=1.0) == plain  # a scale of 1 is no guidance
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 4, "negative_prompt": "rude"}
    r = server.http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert "guidance_scale" in r.json()["error"]["message"]


@pytest.mark.slow
def test_assisted_generation(server: RunningServer, torch_zoo: dict[str, Path], tmp_path: Path) -> None:
    """A draft model (the same weights: every draft fits) and prompt lookup give the same greedy
    answer as none, and the usage says how many drafted tokens were accepted."""
    import shutil

    folder = torch_zoo["chat"]
    draft = shutil.copytree(folder, tmp_path / "tiny-draft")
    for name, path in (("tiny", folder), ("tiny-draft", draft)):
        assert server.http.post("/api/models", json={"path": str(path), "name": name}).status_code == 201
    load(server, "tiny", {})
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 16, "temperature": 0}
    plain = server.http.post("/v1/chat/completions", json=body).json()
    assert "completion_tokens_details" not in plain["usage"]
    r = server.http.put(
        "/api/models/tiny/settings", json={"options": {"draft_model": "tiny-draft", "draft_max": 4}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["saved"]["draft_model"] == str(draft)
    assert server.http.post("/api/models/tiny/load", json={}).status_code == 200
    assisted = server.http.post("/v1/chat/completions", json=body).json()
    assert assisted["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    details = assisted["usage"]["completion_tokens_details"]
    assert details["accepted_prediction_tokens"] > 0  # its own weights: the drafts are right
    assert details["rejected_prediction_tokens"] < details["accepted_prediction_tokens"]
    (instance,) = [i for i in server.http.get("/api/instances").json() if i["model"] == "tiny"]
    assert instance["draft_acceptance"] > 0.5
    assert instance["tokens_per_second"] > 0
    assert assisted["timings"]["draft_n_accepted"] == details["accepted_prediction_tokens"]
    lookup = load(server, "tiny", {"prompt_lookup": 3})
    assert lookup["n_ctx"] > 0
    looked_up = server.http.post("/v1/chat/completions", json=body).json()
    assert looked_up["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert "completion_tokens_details" in looked_up["usage"]
