"""The small vocabularies of the library: categories, component roles, image templates."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"
    RERANK = "rerank"
    MULTIMODAL = "multimodal"
    IMAGE = "image"
    VIDEO = "video"  # diffusion models that make clips (the video template)
    AUDIO = "audio"  # audio models modelyard does not serve yet
    SPEECH_TO_TEXT = "speech-to-text"
    TEXT_TO_SPEECH = "text-to-speech"
    CAPTIONING = "captioning"  # image to text
    UPSCALE = "upscale"  # single-image super-resolution
    FACE = "face"  # face detection and embeddings
    CLASSIFICATION = "classification"


class ComponentRole(StrEnum):
    MMPROJ = "mmproj"
    VAE = "vae"
    CLIP_L = "clip_l"
    CLIP_G = "clip_g"
    T5XXL = "t5xxl"


class Template(StrEnum):
    """Image model templates of the model library manual."""

    SD_OFFICIAL = "sd_official"
    FLUX = "flux"
    VIDEO = "video"


class Capability(StrEnum):
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    VIDEO = "video"


# Which components each template takes (the model library manual).
TEMPLATE_COMPONENTS: dict[Template, tuple[ComponentRole, ...]] = {
    Template.SD_OFFICIAL: (
        ComponentRole.VAE,
        ComponentRole.CLIP_L,
        ComponentRole.CLIP_G,
        ComponentRole.T5XXL,
    ),
    Template.FLUX: (ComponentRole.VAE, ComponentRole.CLIP_L, ComponentRole.T5XXL),
    Template.VIDEO: (ComponentRole.VAE, ComponentRole.T5XXL),
}

# diffusion models: pictures and clips share templates, components, LoRAs and the diffusers backend
DIFFUSION = frozenset({Category.IMAGE, Category.VIDEO})


def diffusion_category(template: Template | None) -> Category:
    return Category.VIDEO if template is Template.VIDEO else Category.IMAGE


DEFAULT_CAPABILITIES: dict[Template, tuple[Capability, ...]] = {
    Template.SD_OFFICIAL: (Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE),
    Template.FLUX: (Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE),
    Template.VIDEO: (Capability.VIDEO,),
}
