"""Importing into the library: categories, names, image templates, components."""

from __future__ import annotations

from pathlib import Path

import pytest

import builders as b
from modelyard.errors import InvalidImport, InvalidName, ModelExists, PathNotFound
from modelyard.library import ImportRequest, Library


def imp(library: Library, path: Path, **kw: object) -> object:
    return library.import_model(ImportRequest(path=str(path), **kw))  # type: ignore[arg-type]


def test_import_gguf(library: Library, zoo: Path) -> None:
    m = library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-q8.gguf"), description="tiny"))
    assert (m.name, m.category, m.format, m.quantization, m.architecture, m.context_length) == (
        "tiny-llama-q8",
        "chat",
        "gguf",
        "Q8_0",
        "llama",
        512,
    )
    assert m.description == "tiny"
    assert m.files[0].size == (zoo / "chat/tiny-llama-q8.gguf").stat().st_size
    assert library.get("tiny-llama-q8").facts["chat_template"] is True


def test_multimodal_picks_up_mmproj(library: Library, zoo: Path) -> None:
    m = library.import_model(ImportRequest(path=str(zoo / "vision/tiny-vl.gguf")))
    assert m.category == "multimodal"
    assert [(c.role, Path(c.path).name) for c in m.components] == [("mmproj", "mmproj-tiny-vl-f16.gguf")]


def test_category_override_and_name(library: Library, zoo: Path) -> None:
    m = library.import_model(
        ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf"), name="mine", category="embedding")
    )
    assert (m.name, m.category, m.facts["category_from"]) == ("mine", "embedding", "user")
    with pytest.raises(InvalidImport, match="unknown category 'talk'"):
        library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-q8.gguf"), category="talk"))


def test_same_files_twice_and_name_clash(library: Library, zoo: Path, tmp_path: Path) -> None:
    library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    with pytest.raises(ModelExists, match="already in the library as 'tiny-llama-f32'"):
        library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    (other,) = b.write_llama_gguf(tmp_path / "tiny-llama-f32.gguf")
    # a default name that is taken gets a suffix; an explicit one is refused
    assert library.import_model(ImportRequest(path=str(other))).name == "tiny-llama-f32-2"
    (third,) = b.write_llama_gguf(tmp_path / "x" / "third.gguf")
    with pytest.raises(ModelExists):
        library.import_model(ImportRequest(path=str(third), name="tiny-llama-f32"))
    with pytest.raises(InvalidName):
        library.import_model(ImportRequest(path=str(third), name="bad name/with slash"))


def test_adapters_and_components_are_not_models(library: Library, zoo: Path) -> None:
    with pytest.raises(InvalidImport, match="LoRA adapter, not a model"):
        library.import_model(ImportRequest(path=str(zoo / "chat-lora/tiny-lora.gguf")))
    with pytest.raises(InvalidImport, match="mmproj component, not a model"):
        library.import_model(ImportRequest(path=str(zoo / "vision/mmproj-tiny-vl-f16.gguf")))
    with pytest.raises(PathNotFound):
        library.import_model(ImportRequest(path=str(zoo / "nope.gguf")))


def test_sd_import_with_template_components_capabilities(library: Library, zoo: Path, tmp_path: Path) -> None:
    vae = b.write_safetensors(tmp_path / "ae.safetensors", b.VAE_KEYS)
    clip_l = b.write_safetensors(tmp_path / "clip_l.safetensors", b.CLIP_L_KEYS)
    clip_g = b.write_safetensors(tmp_path / "clip_g.safetensors", b.CLIP_G_KEYS)
    t5 = b.write_safetensors(tmp_path / "t5xxl.safetensors", b.T5_KEYS)
    flux = b.write_safetensors(tmp_path / "flux1-tiny.safetensors", b.FLUX_KEYS)
    m = library.import_model(
        ImportRequest(
            path=str(flux),
            components={"vae": str(vae), "clip_l": str(clip_l), "t5xxl": str(t5)},
        )
    )
    assert (m.category, m.template) == ("image", "flux")
    assert sorted(c.role for c in m.components) == ["clip_l", "t5xxl", "vae"]
    assert m.capabilities == ["text-to-image", "image-to-image"]
    # flux takes no CLIP-G
    sdxl = zoo / "image/tiny-sdxl.safetensors"
    with pytest.raises(InvalidImport, match="flux template takes vae, clip_l, t5xxl; not clip_g"):
        library.import_model(
            ImportRequest(path=str(sdxl), template="flux", components={"clip_g": str(clip_g)})
        )
    # a file given in the wrong role is refused
    with pytest.raises(InvalidImport, match="is a t5xxl component, not vae"):
        library.import_model(ImportRequest(path=str(sdxl), components={"vae": str(t5)}))
    m = library.import_model(
        ImportRequest(
            path=str(sdxl),
            template="sd_official",
            components={"clip_g": str(clip_g)},
            capabilities=["text-to-image"],
        )
    )
    assert (m.template, m.capabilities) == ("sd_official", ["text-to-image"])
    with pytest.raises(InvalidImport, match="cannot have the video capability"):
        library.update(m.name, capabilities=["video"])
    video = library.import_model(
        ImportRequest(path=str(b.write_safetensors(tmp_path / "wan.safetensors", b.WAN_KEYS)))
    )
    assert (video.template, video.capabilities) == ("video", ["video"])


def test_templates_only_for_images(library: Library, zoo: Path) -> None:
    with pytest.raises(InvalidImport, match="templates and capabilities are for image models"):
        library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf"), template="flux"))
