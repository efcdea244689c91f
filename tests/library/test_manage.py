"""Managing the library: list, rename, describe, settings, delete, LoRA adapters, scanning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import builders as b
from modelyard.errors import (
    IncompatibleAdapter,
    InvalidImport,
    InvalidSettings,
    ModelExists,
    ModelLoaded,
    ModelNotFound,
)
from modelyard.library import ImportRequest, Library


def test_list_rename_describe(library: Library, zoo: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-minilm")))
    assert [m.name for m in library.models()] == ["tiny-llama-f32", "tiny-minilm"]
    assert [m.name for m in library.models("embedding")] == ["tiny-minilm"]
    with pytest.raises(InvalidImport, match="unknown category"):
        library.models("nonsense")
    m = library.update("tiny-llama-f32", new_name="tiny", description="my little llama")
    assert (m.name, m.description) == ("tiny", "my little llama")
    with pytest.raises(ModelNotFound):
        library.get("tiny-llama-f32")
    with pytest.raises(ModelExists):
        library.update("tiny", new_name="tiny-minilm")
    with pytest.raises(InvalidImport, match="between image and text"):
        library.update("tiny", category="image")


def test_delete_keeps_files_and_removes_adapters(library: Library, zoo: Path) -> None:
    base = zoo / "chat-lora/tiny-base.gguf"
    library.import_model(ImportRequest(path=str(base)))
    library.add_adapter("tiny-base", str(zoo / "chat-lora/tiny-lora.gguf"), "style")
    assert [a.name for a in library.get("tiny-base").adapters] == ["style"]
    library.delete("tiny-base")
    with pytest.raises(ModelNotFound):
        library.get("tiny-base")
    assert base.is_file()
    assert (zoo / "chat-lora/tiny-lora.gguf").is_file()
    with library.store.session() as s:
        from sqlalchemy import text

        assert s.execute(text("select count(*) from adapters")).scalar() == 0
        assert s.execute(text("select count(*) from model_files")).scalar() == 0


def test_loaded_model_cannot_be_deleted(store: object, zoo: Path) -> None:
    loaded = {"tiny-llama-f32"}
    lib = Library(store, is_loaded=loaded.__contains__)  # type: ignore[arg-type]
    lib.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    with pytest.raises(ModelLoaded, match="unload it first"):
        lib.delete("tiny-llama-f32")
    loaded.clear()
    lib.delete("tiny-llama-f32")


def test_settings(library: Library, zoo: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    backend, saved, effective = library.settings("tiny-llama-f32")
    assert (backend, saved, effective.n_ctx) == ("llama.cpp", {}, 512)  # 0 = the model's own
    library.put_settings("tiny-llama-f32", {"n_ctx": 256, "threads": 2})
    library.put_settings("tiny-llama-f32", {"cache_type_k": "q8_0"})
    _, saved, effective = library.settings("tiny-llama-f32")
    assert saved == {"n_ctx": 256, "threads": 2, "cache_type_k": "q8_0"}
    assert effective.n_ctx == 256
    assert effective.n_batch == 512
    with pytest.raises(InvalidSettings, match="n_ctx: Input should be greater than or equal to 0"):
        library.put_settings("tiny-llama-f32", {"n_ctx": -1})
    with pytest.raises(InvalidSettings, match="gpu_layerz: Extra inputs are not permitted"):
        library.put_settings("tiny-llama-f32", {"gpu_layerz": 3})
    with pytest.raises(InvalidSettings, match=r"beyond the trained context of 'tiny-llama-f32' \(512\)"):
        library.put_settings("tiny-llama-f32", {"n_ctx": 4096})
    library.put_settings("tiny-llama-f32", {"n_ctx": 4096, "rope_scaling": "yarn"})
    library.put_settings("tiny-llama-f32", {"n_ctx": None, "rope_scaling": None})
    assert library.settings("tiny-llama-f32")[1] == {"threads": 2, "cache_type_k": "q8_0"}
    library.put_settings("tiny-llama-f32", {"n_ctx": 0}, merge=False)
    assert library.settings("tiny-llama-f32")[1] == {"n_ctx": 0}


def test_settings_of_other_backends(library: Library, zoo: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-minilm")))
    library.put_settings("tiny-minilm", {"batch_size": 64, "device": "cpu"})
    assert library.settings("tiny-minilm")[0] == "sentence-transformers"
    with pytest.raises(InvalidSettings, match="device"):
        library.put_settings("tiny-minilm", {"device": "tpu"})
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-6.5bpw-exl2")))
    library.put_settings("tiny-6.5bpw-exl2", {"cache_8bit": True})
    assert library.settings("tiny-6.5bpw-exl2")[0] == "exllamav2"
    with pytest.raises(InvalidSettings, match="cache_8bit and cache_4bit"):
        library.put_settings("tiny-6.5bpw-exl2", {"cache_4bit": True})


def test_a_draft_model_is_checked_by_the_backend_its_settings_are_for(
    library: Library, zoo: Path, tmp_path: Path
) -> None:
    library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    draft = zoo / "chat/tiny-llama-q8.gguf"  # the same vocabulary, smaller weights
    library.import_model(ImportRequest(path=str(draft), name="tiny-draft"))
    # llama.cpp: a library model's name is saved as its file
    library.put_settings("tiny-llama-f32", {"draft_model": "tiny-draft", "draft_max": 4})
    assert library.settings("tiny-llama-f32")[1]["draft_model"] == str(draft)
    projector = zoo / "vision/mmproj-tiny-vl-f16.gguf"  # a GGUF without a vocabulary
    with pytest.raises(InvalidSettings, match=r"the draft model's vocabulary \(None, None tokens\)"):
        library.put_settings("tiny-llama-f32", {"draft_model": str(projector)})
    with pytest.raises(InvalidSettings, match="the draft model is safetensors; 'tiny-llama-f32' is gguf"):
        library.put_settings("tiny-llama-f32", {"draft_model": str(zoo / "hf/tiny-llama-hf")})
    with pytest.raises(InvalidSettings, match="neither a library model nor a model file"):
        library.put_settings("tiny-llama-f32", {"draft_model": "nothing-of-that-name"})
    assert library.settings("tiny-llama-f32")[1]["draft_model"] == str(draft)  # refusals change nothing
    # transformers takes a draft folder; the same model's folder is one with its vocabulary
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-llama-hf")))
    hf_draft = b.write_hf_llama(tmp_path / "hf-draft", hidden=32, layers=1)
    library.put_settings("tiny-llama-hf", {"draft_model": str(hf_draft)})
    assert library.settings("tiny-llama-hf")[1]["draft_model"] == str(hf_draft)
    with pytest.raises(InvalidSettings, match="the draft model is gguf"):
        library.put_settings("tiny-llama-hf", {"draft_model": "tiny-draft"})
    # a backend whose options name no other model saves them as they are
    library.put_settings("tiny-llama-hf", {"draft_model": None}, backend="vllm")
    assert "draft_model" not in library.settings("tiny-llama-hf")[1]


def test_gguf_lora_compatibility(library: Library, zoo: Path, tmp_path: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "chat-lora/tiny-base.gguf")))
    m = library.add_adapter("tiny-base", str(zoo / "chat-lora/tiny-lora.gguf"))
    assert [(a.name, a.format) for a in m.adapters] == [("tiny-lora", "gguf-lora")]
    wrong_arch = b.write_lora_gguf(tmp_path / "qwen-lora.gguf", arch="qwen2")
    with pytest.raises(IncompatibleAdapter, match="LoRA for qwen2, and 'tiny-base' is llama"):
        library.add_adapter("tiny-base", str(wrong_arch))
    wrong_size = b.write_lora_gguf(tmp_path / "big-lora.gguf", n_embd=128)
    with pytest.raises(IncompatibleAdapter, match="do not fit it"):
        library.add_adapter("tiny-base", str(wrong_size))
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-minilm")))
    with pytest.raises(
        IncompatibleAdapter, match="bind to chat and multimodal models; 'tiny-minilm' is embedding"
    ):
        library.add_adapter("tiny-minilm", str(zoo / "chat-lora/tiny-lora.gguf"))
    with pytest.raises(IncompatibleAdapter, match="not a LoRA adapter"):
        library.add_adapter("tiny-base", str(zoo / "chat/tiny-llama-f32.gguf"))


def test_peft_and_sd_lora(library: Library, zoo: Path, tmp_path: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-llama-hf")))
    m = library.add_adapter("tiny-llama-hf", str(b.write_peft(tmp_path / "peft-ok")), "ok")
    assert m.adapter("ok") is not None
    assert m.adapter("ok").format == "peft"
    with pytest.raises(IncompatibleAdapter, match=r"is \[64, 64\] in the base"):
        library.add_adapter("tiny-llama-hf", str(b.write_peft(tmp_path / "peft-big", hidden=128)))
    library.import_model(ImportRequest(path=str(zoo / "chat-lora/tiny-base.gguf")))
    with pytest.raises(IncompatibleAdapter, match="convert_lora_to_gguf"):
        library.add_adapter("tiny-base", str(tmp_path / "peft-ok"))
    # SD: one LoRA file, or a folder of them
    library.import_model(ImportRequest(path=str(zoo / "image/tiny-sdxl.safetensors")))
    one = b.write_safetensors(tmp_path / "loras" / "a.safetensors", b.SD_LORA_KEYS)
    b.write_safetensors(tmp_path / "loras" / "b.safetensors", b.SD_LORA_KEYS)
    m = library.add_adapter("tiny-sdxl", str(one), "a")
    m = library.add_adapter("tiny-sdxl", str(tmp_path / "loras"), "all")
    assert [(a.name, a.format) for a in m.adapters] == [("a", "sd-lora"), ("all", "sd-lora")]
    with pytest.raises(IncompatibleAdapter, match="Stable Diffusion LoRA"):
        library.add_adapter("tiny-base", str(one))


def test_components_edit(library: Library, zoo: Path, tmp_path: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "image/tiny-sdxl.safetensors")))
    vae = b.write_safetensors(tmp_path / "vae.safetensors", b.VAE_KEYS)
    m = library.set_component("tiny-sdxl", "vae", str(vae))
    assert m.component("vae") is not None
    m = library.remove_component("tiny-sdxl", "vae")
    assert m.components == []
    library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    m = library.set_component("tiny-llama-f32", "mmproj", str(zoo / "vision/mmproj-tiny-vl-f16.gguf"))
    assert m.category == "multimodal"
    with pytest.raises(InvalidImport, match="belong to image models"):
        library.set_component("tiny-llama-f32", "vae", str(vae))


def test_scan_imports_everything_once(library: Library, zoo: Path, gemma: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    os.symlink(zoo, root / "zoo")
    os.symlink(gemma.parent, root / "gemma")
    report = library.scan(str(root))
    assert not report.failed, report.failed
    names = {m.name: m for m in library.models()}
    expected = {
        "tiny-llama-f32": ("chat", "gguf", "F32"),
        "tiny-llama-q8": ("chat", "gguf", "Q8_0"),
        "tiny-base": ("chat", "gguf", "F16"),
        "tiny-split": ("chat", "gguf", "F32"),
        "tiny-vl": ("multimodal", "gguf", "F32"),
        "tiny-embed": ("embedding", "gguf", "F32"),
        "tiny-reranker": ("rerank", "gguf", "F32"),
        "tiny-llama-hf": ("chat", "safetensors", "F16"),
        "tiny-minilm": ("embedding", "safetensors", "F32"),
        "tiny-cross-encoder": ("rerank", "safetensors", "F32"),
        "tiny-llava": ("multimodal", "safetensors", "F16"),
        "tiny-gptq": ("chat", "safetensors", "GPTQ 4-bit g128"),
        "tiny-awq": ("chat", "safetensors", "AWQ 4-bit g64"),
        "tiny-bnb": ("chat", "safetensors", "bnb 4-bit nf4"),
        "tiny-6.5bpw-exl2": ("chat", "safetensors", "EXL2 6.5bpw"),
        "tiny-sharded": ("chat", "safetensors", "F16"),
        "tiny-flux-diffusers": ("image", "diffusers", "F16"),
        "tiny-sdxl": ("image", "safetensors", "F16"),
        "gemma-3-270m-q4_k_m": ("chat", "gguf", "Q4_K_M"),
    }
    assert {n: (m.category, m.format, m.quantization) for n, m in names.items()} == expected
    assert names["gemma-3-270m-q4_k_m"].context_length == 32768
    assert names["gemma-3-270m-q4_k_m"].architecture == "gemma3"
    assert [a.name for a in names["tiny-base"].adapters] == ["tiny-lora"]
    assert "tiny-base:tiny-lora" in report.imported
    assert names["tiny-vl"].component("mmproj") is not None
    assert not report.skipped, report.skipped
    again = library.scan(str(root))
    assert again.imported == []
    assert again.failed == []
    assert again.skipped == []
    assert len(library.models()) == len(expected)
