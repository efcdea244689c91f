"""What a single weights file is, from its tensor names and shapes alone.

Stable Diffusion, SDXL, SD3, FLUX and Wan checkpoints, their loose components (VAE, CLIP-L, CLIP-G,
T5-XXL) and LoRA files all have recognisable tensor names; this module knows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelyard.categories import ComponentRole, Template

# GGUF architectures that are diffusion models (city96-style conversions) or their text encoders.
IMAGE_GGUF_ARCHS: dict[str, Template] = {
    "sd1": Template.SD_OFFICIAL,
    "sd2": Template.SD_OFFICIAL,
    "sdxl": Template.SD_OFFICIAL,
    "sd3": Template.SD_OFFICIAL,
    "flux": Template.FLUX,
    "chroma": Template.FLUX,
    "aura": Template.SD_OFFICIAL,
    "hidream": Template.FLUX,
    "lumina2": Template.FLUX,
    "qwen_image": Template.FLUX,
    "wan": Template.VIDEO,
    "ltxv": Template.VIDEO,
    "hyvid": Template.VIDEO,
    "cosmos": Template.VIDEO,
}
TEXT_ENCODER_GGUF_ARCHS: dict[str, ComponentRole] = {
    "t5encoder": ComponentRole.T5XXL,
    "t5": ComponentRole.T5XXL,
}


@dataclass(frozen=True)
class Checkpoint:
    """The verdict on a weights file: a full image model, a component, or a LoRA."""

    what: str  # "image", "component", "lora" or "unknown"
    template: Template | None = None
    role: ComponentRole | None = None
    variant: str | None = None  # sd1, sdxl, sd3, flux, wan, ...
    lora_target: str | None = None  # "diffusion" or "language"


def _any(names: list[str], *fragments: str) -> bool:
    return any(f in n for n in names for f in fragments)


def classify(shapes: Mapping[str, tuple[int, ...]]) -> Checkpoint:
    """Classify a weights file by its tensor names (and a few shapes)."""
    names = list(shapes)
    lora = _any(names, "lora_down", "lora_up", "lora_A", "lora_B", ".lora.down", "lora_unet_")
    if lora:
        diffusion = _any(
            names,
            "lora_unet_",
            "lora_te",
            "diffusion_model",
            "double_blocks",
            "unet.",
            "transformer_blocks",
        )
        return Checkpoint("lora", lora_target="diffusion" if diffusion else "language")

    def has(fragment: str) -> bool:
        return any(fragment in n for n in names)

    if has("double_blocks.0.img_attn") or (
        has("single_transformer_blocks.") and has("transformer_blocks.0.attn.add_q_proj")
    ):
        return Checkpoint("image", template=Template.FLUX, variant="flux")
    if has("joint_blocks.0.") or has("transformer_blocks.0.attn.add_q_proj"):
        return Checkpoint("image", template=Template.SD_OFFICIAL, variant="sd3")
    if has("patch_embedding.weight") and has("blocks.0.cross_attn."):
        return Checkpoint("image", template=Template.VIDEO, variant="wan")
    if has("model.diffusion_model.input_blocks.") or (
        has("down_blocks.0.resnets.0.conv1.weight") and has("time_embedding.")
    ):
        sdxl = has("conditioner.embedders.1.") or has("add_embedding.linear_1") or has("label_emb.")
        return Checkpoint("image", template=Template.SD_OFFICIAL, variant="sdxl" if sdxl else "sd1")

    role = _component_role(names, shapes)
    if role is not None:
        return Checkpoint("component", role=role)
    return Checkpoint("unknown")


def _component_role(names: list[str], shapes: Mapping[str, tuple[int, ...]]) -> ComponentRole | None:
    if all(n.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv")) for n in names) and (
        any(n.startswith("decoder.") for n in names)
    ):
        return ComponentRole.VAE
    if any(n.startswith("first_stage_model.decoder.") for n in names) and not any(
        "diffusion_model" in n for n in names
    ):
        return ComponentRole.VAE
    if any("encoder.block.0.layer.0.SelfAttention.q.weight" in n for n in names):
        return ComponentRole.T5XXL
    width = _clip_width(names, shapes)
    if width is not None:
        return ComponentRole.CLIP_G if width >= 1280 else ComponentRole.CLIP_L
    return None


def _clip_width(names: list[str], shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    for n in names:
        if n.endswith(("token_embedding.weight", "embeddings.token_embedding.weight")) and (
            "text_model" in n or n.startswith(("token_embedding", "transformer", "model."))
        ):
            shape = shapes[n]
            return shape[-1] if shape else None
    return None
