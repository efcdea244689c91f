"""Detection: category, format, quantization, architecture and context from the files."""

from __future__ import annotations

from pathlib import Path

import pytest

import builders as b
from modelyard.api.schemas import InspectionOut
from modelyard.errors import IncompleteModel, InvalidImport, MalformedFile, PathNotFound, UnsupportedFormat
from modelyard.formats.detect import inspect_path
from modelyard.formats.inspection import Inspection

CASES = [
    # path under the zoo, kind, category, format, quantization, architecture, context
    ("chat/tiny-llama-f32.gguf", "model", "chat", "gguf", "F32", "llama", 512),
    ("chat/tiny-llama-q8.gguf", "model", "chat", "gguf", "Q8_0", "llama", 512),
    ("chat-lora/tiny-lora.gguf", "adapter", None, "gguf", "F32", "llama", None),
    ("split/tiny-split-00001-of-00003.gguf", "model", "chat", "gguf", "F32", "llama", 512),
    ("vision/tiny-vl.gguf", "model", "multimodal", "gguf", "F32", "llama", 512),
    ("vision/mmproj-tiny-vl-f16.gguf", "component", None, "gguf", "F32", "clip", None),
    ("embed-gguf/tiny-embed.gguf", "model", "embedding", "gguf", "F32", "bert", 512),
    ("rerank-gguf/tiny-reranker.gguf", "model", "rerank", "gguf", "F32", "bert", 512),
    ("hf/tiny-llama-hf", "model", "chat", "safetensors", "F16", "llama", 2048),
    ("hf/tiny-minilm", "model", "embedding", "safetensors", "F32", "bert", 256),
    ("hf/tiny-cross-encoder", "model", "rerank", "safetensors", "F32", "bert", 512),
    ("hf/tiny-llava", "model", "multimodal", "safetensors", "F16", "llama", 2048),
    ("hf/tiny-gptq", "model", "chat", "safetensors", "GPTQ 4-bit g128", "llama", 2048),
    ("hf/tiny-awq", "model", "chat", "safetensors", "AWQ 4-bit g64", "llama", 2048),
    ("hf/tiny-bnb", "model", "chat", "safetensors", "bnb 4-bit nf4", "llama", 2048),
    ("hf/tiny-6.5bpw-exl2", "model", "chat", "safetensors", "EXL2 6.5bpw", "llama", 2048),
    ("hf/tiny-sharded", "model", "chat", "safetensors", "F16", "llama", 2048),
    ("image/tiny-flux-diffusers", "model", "image", "diffusers", "F16", "FluxPipeline", None),
    ("image/tiny-sdxl.safetensors", "model", "image", "safetensors", "F16", "sdxl", None),
]


@pytest.mark.parametrize(("rel", "kind", "category", "fmt", "quant", "arch", "ctx"), CASES)
def test_zoo(
    zoo: Path, rel: str, kind: str, category: str | None, fmt: str, quant: str, arch: str, ctx: int | None
) -> None:
    insp = inspect_path(zoo / rel)
    assert (insp.kind, insp.format, insp.quantization, insp.architecture, insp.context_length) == (
        kind,
        fmt,
        quant,
        arch,
        ctx,
    )
    assert (insp.category.value if insp.category else None) == category
    assert insp.category_from == "metadata"


def loaders(insp: Inspection) -> list[str]:
    """The loaders ``modelyard inspect`` shows, best first."""
    return InspectionOut.of(insp).loaders


def test_loaders_follow_quantization(zoo: Path) -> None:
    assert loaders(inspect_path(zoo / "chat/tiny-llama-q8.gguf")) == [
        "llama.cpp",
        "transformers",
    ]  # on request
    assert loaders(inspect_path(zoo / "embed-gguf/tiny-embed.gguf")) == ["llama.cpp"]  # not a chat model
    assert loaders(inspect_path(zoo / "hf/tiny-6.5bpw-exl2")) == ["exllamav2"]
    assert loaders(inspect_path(zoo / "hf/tiny-gptq")) == ["vllm", "exllamav2", "transformers"]
    assert loaders(inspect_path(zoo / "hf/tiny-llama-hf")) == ["transformers", "vllm"]
    assert loaders(inspect_path(zoo / "hf/tiny-minilm"))[0] == "sentence-transformers"
    assert loaders(inspect_path(zoo / "image/tiny-flux-diffusers")) == ["diffusers"]


def test_split_gguf(zoo: Path, tmp_path: Path) -> None:
    insp = inspect_path(zoo / "split/tiny-split-00001-of-00003.gguf")
    assert len(insp.files) == 3
    (single,) = b.write_llama_gguf(tmp_path / "single.gguf")
    assert insp.parameters == inspect_path(single).parameters
    with pytest.raises(InvalidImport, match="not the first shard"):
        inspect_path(zoo / "split/tiny-split-00002-of-00003.gguf")


def test_missing_shard(tmp_path: Path) -> None:
    paths = b.write_llama_gguf(tmp_path / "s.gguf", shards=3)
    paths[2].unlink()
    with pytest.raises(IncompleteModel, match="1 of 3 shards are missing"):
        inspect_path(paths[0])


def test_mmproj_beside_makes_multimodal(zoo: Path) -> None:
    insp = inspect_path(zoo / "vision/tiny-vl.gguf")
    assert [c.path.name for c in insp.companions] == ["mmproj-tiny-vl-f16.gguf"]


def test_single_file_components(tmp_path: Path) -> None:
    for keys, role in (
        (b.VAE_KEYS, "vae"),
        (b.CLIP_L_KEYS, "clip_l"),
        (b.CLIP_G_KEYS, "clip_g"),
        (b.T5_KEYS, "t5xxl"),
    ):
        insp = inspect_path(b.write_safetensors(tmp_path / f"{role}.safetensors", keys))
        assert (insp.kind, insp.role) == ("component", role)
    flux = inspect_path(b.write_safetensors(tmp_path / "f.safetensors", b.FLUX_KEYS))
    assert (flux.category, flux.template) == ("image", "flux")
    wan = inspect_path(b.write_safetensors(tmp_path / "w.safetensors", b.WAN_KEYS))
    assert (wan.category, wan.template) == ("video", "video")
    lora = inspect_path(b.write_safetensors(tmp_path / "l.safetensors", b.SD_LORA_KEYS))
    assert lora.kind == "adapter"


def test_peft_adapter(tmp_path: Path) -> None:
    insp = inspect_path(b.write_peft(tmp_path / "adapter"))
    assert (insp.kind, insp.format) == ("adapter", "peft")
    assert insp.facts["r"] == 4
    assert insp.facts["target_modules"] == ["q_proj", "v_proj"]


def test_name_fallbacks(tmp_path: Path) -> None:
    # a folder of safetensors with no config: the folder name decides
    emb = b.write_safetensors(tmp_path / "bge-small" / "model.safetensors", {"w": (4, 4)}).parent
    rr = b.write_safetensors(tmp_path / "bge-reranker" / "model.safetensors", {"w": (4, 4)}).parent
    assert (inspect_path(emb).category, inspect_path(emb).category_from) == ("embedding", "name")
    assert inspect_path(rr).category == "rerank"
    # a single safetensors whose tensor names say nothing: an image model by the manual's rule
    single = inspect_path(b.write_safetensors(tmp_path / "x" / "mystery.safetensors", {"w": (4, 4)}))
    assert (single.category, single.category_from) == ("image", "name")
    # a GGUF named like a vision model, without a projector beside it
    (vl,) = b.write_llama_gguf(tmp_path / "y" / "qwen-vision-tiny.gguf")
    insp = inspect_path(vl)
    assert (insp.category, insp.category_from) == ("multimodal", "name")
    assert insp.warnings


def test_pickles_are_flagged_not_loaded(tmp_path: Path) -> None:
    insp = inspect_path(b.write_pickle(tmp_path / "model.bin"))
    assert (insp.format, insp.unsafe, insp.category) == ("pytorch", True, "chat")
    ckpt = inspect_path(b.write_pickle(tmp_path / "v1-5.ckpt"))
    assert (ckpt.unsafe, ckpt.category) == (True, "image")
    folder = b.write_hf_llama(tmp_path / "pt")
    (folder / "model.safetensors").unlink()
    b.write_pickle(folder / "pytorch_model.bin")
    insp = inspect_path(folder)
    assert (insp.format, insp.unsafe, insp.parameters) == ("pytorch", True, None)


def test_legacy_ggml(tmp_path: Path) -> None:
    path = tmp_path / "old-ggml-model-q4_0.bin"
    path.write_bytes(b"tjgg" + b"\0" * 64)
    insp = inspect_path(path)
    assert (insp.format, insp.category) == ("ggml", "chat")
    assert loaders(insp) == []
    assert "convert it to GGUF" in insp.warnings[0]


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        inspect_path(tmp_path / "nope.gguf")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(UnsupportedFormat, match=r"one ONNX model on its own"):
        inspect_path(onnx)
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "det.onnx").write_bytes(b"\x08\x07\x3a\x05")  # a graph field that runs past the end
    with pytest.raises(MalformedFile, match="not a readable ONNX model"):
        inspect_path(pack)
    (pack / "det.onnx").write_bytes(b"\x08\x07")  # a model without a graph
    with pytest.raises(MalformedFile, match="no graph"):
        inspect_path(pack)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world")
    with pytest.raises(UnsupportedFormat, match="neither GGUF"):
        inspect_path(junk)
    llm = b.write_safetensors(
        tmp_path / "z" / "model.safetensors", {"model.layers.0.self_attn.q_proj.weight": (4, 4)}
    )
    with pytest.raises(UnsupportedFormat, match="without their folder"):
        inspect_path(llm)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnsupportedFormat, match="no single model here"):
        inspect_path(empty)


def test_gemma(gemma: Path) -> None:
    insp = inspect_path(gemma)
    assert (insp.category, insp.format, insp.quantization, insp.architecture, insp.context_length) == (
        "chat",
        "gguf",
        "Q4_K_M",
        "gemma3",
        32768,
    )
    assert insp.facts["chat_template"] is False


def test_gguf_without_its_suffix(tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "model.gguf")
    renamed = path.rename(tmp_path / "model-download")
    assert inspect_path(renamed).format == "gguf"


def test_diffusers_pipelines_get_their_template() -> None:
    from modelyard.categories import Template
    from modelyard.formats.hf import diffusers_template

    assert diffusers_template("HunyuanDiTPipeline") is Template.SD_OFFICIAL  # it draws images
    assert diffusers_template("HunyuanVideoPipeline") is Template.VIDEO
    assert diffusers_template("WanPipeline") is Template.VIDEO
    assert diffusers_template("CogVideoXPipeline") is Template.VIDEO
    assert diffusers_template("FluxPipeline") is Template.FLUX
    assert diffusers_template("StableDiffusionXLPipeline") is Template.SD_OFFICIAL


@pytest.mark.parametrize(
    ("model_type", "arch", "category"),
    [
        ("whisper", "WhisperForConditionalGeneration", "speech-to-text"),
        ("wav2vec2", "Wav2Vec2ForCTC", "speech-to-text"),
        ("vits", "VitsModel", "text-to-speech"),
        ("hubert", "HubertModel", "audio"),  # an encoder without a CTC head: not served yet
    ],
)
def test_speech_models_by_their_config(tmp_path: Path, model_type: str, arch: str, category: str) -> None:
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(f'{{"model_type": "{model_type}", "architectures": ["{arch}"]}}')
    b.write_safetensors(folder / "model.safetensors", {"proj.weight": (8, 8)})
    insp = inspect_path(folder)
    assert insp.category is not None
    assert (insp.category.value, insp.category_from) == (category, "metadata")
    # transformers runs what modelyard serves; nothing takes a bare encoder yet
    assert loaders(insp)[:1] == ([] if category == "audio" else ["transformers"])
