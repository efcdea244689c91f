"""Quantization names explained (the beginner's guide): the bits a name's level says, the
file's measured bits per weight, a note, and a warning under the 4-bit line; each loader with
why it is offered, through `show` and the API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import RunningServer
from modelyard.catalog.records import Model, ModelFile
from modelyard.cli.main import app
from modelyard.formats.precision import precision_of


def gguf(label: str, size: int, parameters: int) -> Model:
    return Model("m", "chat", "gguf", "/m.gguf", quantization=label, parameters=parameters,
                 files=[ModelFile("/m.gguf", size)])  # fmt: skip


@pytest.mark.parametrize(
    ("label", "meaning", "note", "warned"),
    [
        (
            "Q4_K_M",
            "Q4_K_M: 4-bit level, k-quant (blocks with their own scales), medium mix within the level",
            "4-bit",
            False,
        ),
        ("Q8_0", "Q8_0: 8-bit level, legacy quant", "8-bit", False),
        ("Q5_1", "Q5_1: 5-bit level, legacy quant with an offset", "5-bit", False),
        ("Q6_K", "Q6_K: 6-bit level, k-quant (blocks with their own scales)", "6-bit", False),
        (
            "Q3_K_S",
            "Q3_K_S: 3-bit level, k-quant (blocks with their own scales), small mix within the level",
            "below 4 bits",
            True,
        ),
        (
            "IQ2_XXS",
            "IQ2_XXS: 2-bit level, i-quant (importance-weighted, best with an imatrix), extra-extra-small mix within the level",
            "below 4 bits",
            True,
        ),
        ("F16", "F16: unquantized 16-bit floats", "full precision", False),
    ],
)
def test_gguf_names_explained(label: str, meaning: str, note: str, warned: bool) -> None:
    p = precision_of(gguf(label, size=4_850_000_000, parameters=8_000_000_000))
    assert p is not None
    assert p.meaning == meaning
    assert p.note.startswith(note)
    assert p.bits_per_weight == 4.85  # measured: the file's bits over its weights
    assert p.measured
    assert (p.warning is not None) is warned
    if warned:
        assert "below the 4-bit line" in p.warning


def test_configured_quantizations_and_full_precision() -> None:
    exl2 = Model(
        "e",
        "chat",
        "safetensors",
        "/e",
        quantization="exl2 6.5bpw",
        facts={"quant_method": "exl2", "bpw": 6.5},
    )
    gptq = Model(
        "g", "chat", "safetensors", "/g", quantization="gptq 3-bit", facts={"quant_method": "gptq", "bits": 3}
    )
    bf16 = Model("b", "chat", "safetensors", "/b", quantization="BF16")
    p_exl2, p_gptq, p_bf16 = precision_of(exl2), precision_of(gptq), precision_of(bf16)
    assert p_exl2 is not None
    assert (p_exl2.bits_per_weight, p_exl2.measured) == (6.5, False)
    assert p_exl2.note.startswith("6-bit")
    assert p_gptq is not None
    assert p_gptq.warning is not None
    assert p_bf16 is not None
    assert p_bf16.note.startswith("full precision")
    assert precision_of(Model("x", "chat", "safetensors", "/x")) is None


def test_show_explains_the_quantization_and_the_loaders(
    server: RunningServer, zoo: Path, gemma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in (gemma, zoo / "hf" / "tiny-gptq"):
        assert server.http.post("/api/models", json={"path": str(path)}).status_code == 201
    shown = server.http.get("/api/models/gemma-3-270m-q4_k_m").json()
    p = shown["precision"]
    assert p["meaning"].startswith("Q4_K_M: 4-bit level")
    size, params = shown["size"], shown["parameters"]
    assert p["bits_per_weight"] == round(size * 8 / params, 2)  # its 262k-token embedding keeps more bits
    assert p["warning"] is None
    assert shown["loaders_why"] == [
        {
            "name": "llama.cpp",
            "why": "GGUF: runs on the CPU, the GPUs or both (layers offloaded as memory allows)",
        },
        {
            "name": "transformers",
            "why": "GGUF read dequantized, for transformers' samplers, when the model's settings ask for it",
        },
    ]
    gptq = server.http.get("/api/models/tiny-gptq").json()
    assert [x["name"] for x in gptq["loaders_why"]] == ["vllm", "exllamav2", "transformers"]
    assert "GPTQ kernels" in gptq["loaders_why"][0]["why"]
    assert "NVIDIA GPUs" in gptq["loaders_why"][1]["why"]
    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    out = CliRunner().invoke(app, ["show", "gemma-3-270m-q4_k_m"]).output
    assert "4-bit level, k-quant" in out
    assert "bits per weight (measured)" in out
    assert "llama.cpp: GGUF: runs on the CPU" in out
    assert (
        json.loads(CliRunner().invoke(app, ["show", "tiny-gptq", "--json"]).output)["precision"][
            "bits_per_weight"
        ]
        == 4
    )
