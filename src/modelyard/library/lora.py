"""LoRA compatibility: does this adapter fit this base model?"""

from __future__ import annotations

from pathlib import Path

from modelyard.catalog.records import Model
from modelyard.categories import DIFFUSION, Category
from modelyard.errors import IncompatibleAdapter
from modelyard.formats import hf
from modelyard.formats.gguf import read_gguf
from modelyard.formats.inspection import ADAPTER, Inspection

TEXT_CATEGORIES = (Category.CHAT, Category.MULTIMODAL)


def adapter_format(insp: Inspection) -> str:
    if insp.format == "gguf":
        return "gguf-lora"
    if insp.format == "peft":
        return "peft"
    return "sd-lora"


def check_adapter(base: Model, insp: Inspection) -> None:
    """Raise IncompatibleAdapter unless ``insp`` is a LoRA that fits ``base``."""
    if insp.kind != ADAPTER:
        raise IncompatibleAdapter(f"{insp.path} is not a LoRA adapter (it is a {insp.kind})")
    fmt = adapter_format(insp)
    if fmt == "sd-lora":
        if base.category not in DIFFUSION:
            raise IncompatibleAdapter(
                f"{insp.path.name} is a Stable Diffusion LoRA and {base.name!r} is not an image model",
                hint="bind it to an image model",
            )
        if insp.facts.get("lora_target") == "language":
            raise IncompatibleAdapter(f"{insp.path.name} adapts a language model, not an image model")
        return
    if base.category not in TEXT_CATEGORIES:
        raise IncompatibleAdapter(
            f"LoRA adapters bind to chat and multimodal models; {base.name!r} is {base.category}",
        )
    if fmt == "gguf-lora":
        _check_gguf(base, insp.path)
    else:
        _check_peft(base, insp)


def _check_gguf(base: Model, adapter: Path) -> None:
    if base.format != "gguf":
        raise IncompatibleAdapter(
            f"{adapter.name} is a GGUF LoRA and {base.name!r} is a {base.format} model",
            hint="use a PEFT adapter folder for transformers models",
        )
    lora = read_gguf(adapter)
    if lora.architecture != base.architecture:
        raise IncompatibleAdapter(
            f"{adapter.name} is a LoRA for {lora.architecture}, and {base.name!r} is {base.architecture}",
            hint="pick an adapter trained on this base model",
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for f in base.files:
        shapes.update(read_gguf(f.path).tensor_shapes())
    lora_shapes = lora.tensor_shapes()
    pairs = [n[: -len(".lora_a")] for n in lora_shapes if n.endswith(".lora_a")]
    if not pairs:
        raise IncompatibleAdapter(f"{adapter.name} holds no lora_a/lora_b tensors")
    for target in pairs:
        a, b = lora_shapes[f"{target}.lora_a"], lora_shapes.get(f"{target}.lora_b")
        if b is None:
            raise IncompatibleAdapter(f"{adapter.name}: {target}.lora_b is missing")
        if target not in shapes:
            raise IncompatibleAdapter(
                f"{adapter.name} adapts {target}, which {base.name!r} does not have",
                hint="pick an adapter trained on this base model",
            )
        w = shapes[target]
        if len(w) < 2 or a[0] != w[0] or b[1] != w[1] or a[1] != b[0]:
            raise IncompatibleAdapter(
                f"{adapter.name}: {target} is {list(w)} in the base, the LoRA's A {list(a)} and "
                f"B {list(b)} do not fit it",
                hint="the adapter was trained on a different base model (size or variant)",
            )


def _check_peft(base: Model, insp: Inspection) -> None:
    if base.format not in ("safetensors",):
        raise IncompatibleAdapter(
            f"{insp.path.name} is a PEFT adapter and {base.name!r} is a {base.format} model",
            hint="convert the adapter to a GGUF LoRA (llama.cpp's convert_lora_to_gguf.py)"
            if base.format == "gguf"
            else None,
        )
    shapes_raw = insp.facts.get("shapes") or {}
    if not shapes_raw:
        return  # pickled weights: nothing to compare without unpickling
    shards, _ = hf.read_weights(Path(base.path))
    base_shapes = {n: t.shape for s in shards for n, t in s.tensors.items()}
    for name, shape in shapes_raw.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module = name.split(".lora_")[0].removeprefix("base_model.model.")
        target = f"{module}.weight"
        if target not in base_shapes:
            raise IncompatibleAdapter(
                f"{insp.path.name} adapts {module}, which {base.name!r} does not have",
                hint="pick an adapter trained on this base model",
            )
        w = base_shapes[target]
        fits = shape[1] == w[1] if ".lora_A." in name else shape[0] == w[0]
        if len(w) != 2 or not fits:
            raise IncompatibleAdapter(
                f"{insp.path.name}: {module} is {list(w)} in the base, the adapter's {name} is {shape}",
                hint="the adapter was trained on a different base model (size or variant)",
            )
