"""The result of inspecting a path, and the name rules used where metadata says nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.categories import Category, ComponentRole, Template

# Kinds of thing a path can be.
MODEL = "model"
ADAPTER = "adapter"
COMPONENT = "component"

MULTIMODAL_WORDS = ("vision", "mmproj", "multimodal")
IMAGE_WORDS = ("stable-diffusion", "stable_diffusion", "sdxl", "flux", "diffusion", "unet", "wan2")


@dataclass
class FileInfo:
    path: Path
    size: int


@dataclass
class Inspection:
    """Everything the files say about a model, an adapter or a component."""

    path: Path
    format: str  # gguf, ggml, safetensors, pytorch, diffusers, peft
    kind: str  # model, adapter, component
    category: Category | None = None
    category_from: str = "metadata"  # or "name" when only the name rules decided
    architecture: str | None = None
    quantization: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    role: ComponentRole | None = None
    template: Template | None = None
    unsafe: bool = False
    files: list[FileInfo] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Components found beside the model (a multimodal GGUF's mmproj), already inspected.
    companions: list[Inspection] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def file_info(path: Path) -> FileInfo:
    return FileInfo(path=path, size=path.stat().st_size)


def name_text(path: Path) -> str:
    return f"{path.name} {path.parent.name}".lower()


def category_from_name(path: Path, *, folder: bool) -> Category:
    """The model library manual's rules, for when the files' metadata says nothing.

    vision / mmproj / multimodal in the file or parent folder name -> multimodal;
    .gguf / .bin -> chat; a folder of .safetensors -> embedding (rerank if named so);
    a single .safetensors (or other checkpoint) file -> image.
    """
    text = name_text(path)
    if any(w in text for w in MULTIMODAL_WORDS):
        return Category.MULTIMODAL
    if folder:
        return Category.RERANK if "rerank" in text else Category.EMBEDDING
    if path.suffix.lower() in (".gguf", ".bin") and not any(w in text for w in IMAGE_WORDS):
        return Category.CHAT
    return Category.IMAGE
