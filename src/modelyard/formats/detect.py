"""inspect_path: what a file or folder is, from its own metadata (names only as the fallback)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelyard.categories import Category, ComponentRole, diffusion_category
from modelyard.errors import (
    IncompleteModel,
    InvalidImport,
    MalformedFile,
    UnsupportedFormat,
)
from modelyard.formats import hf
from modelyard.formats.checkpoint import IMAGE_GGUF_ARCHS, TEXT_ENCODER_GGUF_ARCHS, classify
from modelyard.formats.ctranslate2 import inspect_ctranslate2, is_ctranslate2
from modelyard.formats.files import kind_of, read_head, usable_path
from modelyard.formats.gguf import GGUFFile, read_gguf, shard_paths
from modelyard.formats.inspection import (
    ADAPTER,
    COMPONENT,
    IMAGE_WORDS,
    MODEL,
    MULTIMODAL_WORDS,
    Inspection,
    category_from_name,
    file_info,
    name_text,
)
from modelyard.formats.packs import inspect_onnx_folder, inspect_piper, piper_config
from modelyard.formats.pickled import tensor_names
from modelyard.formats.safetensors import read_safetensors
from modelyard.formats.upscalers import upscaler_of

EMBEDDING_GGUF_ARCHS = (
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "modern-bert",
    "neo-bert",
)
# Old GGML containers, as the first four bytes read on disk.
GGML_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt", b"algg": "ggla"}
SUPPORTED = (
    ".gguf, .safetensors, .bin, .pt, .pth, .ckpt, or a Hugging Face / diffusers / PEFT folder or a face pack"
)


def inspect_path(path: Path | str) -> Inspection:
    """Inspect a model file or folder. Raises a ModelyardError subclass when it is not usable;
    only folders and regular files are opened (never a pipe or a device)."""
    path = usable_path(path)
    info = kind_of(path)
    # Absolute and normalised, but symlinks kept: in a Hugging Face cache the link carries the
    # file's name and the target is a content hash.
    path = Path(os.path.abspath(path))
    try:
        if stat.S_ISDIR(info.st_mode):
            return inspect_folder(path)
        return inspect_file(path)
    except OSError as e:  # unreadable (a /proc file, a failing disk): said so, never quoted
        raise UnsupportedFormat(path, f"cannot be read ({e.strerror or e.__class__.__name__})") from None


def inspect_folder(folder: Path) -> Inspection:
    if (folder / "adapter_config.json").is_file():
        return hf.inspect_peft(folder)
    if (folder / "model_index.json").is_file():
        return hf.inspect_diffusers(folder)
    if is_ctranslate2(folder):
        return inspect_ctranslate2(folder)
    if (folder / "config.json").is_file():
        return hf.inspect_hf_model(folder)
    ggufs = [p for p in sorted(folder.glob("*.gguf")) if "mmproj" not in p.name.lower()]
    firsts = [p for p in ggufs if (s := shard_paths(p)) is None or s[0] == p]
    if len(firsts) == 1:
        return inspect_file(firsts[0])
    tensors = sorted(folder.glob("*.safetensors"))
    if tensors and not ggufs:
        return _safetensors_folder(folder, tensors)
    onnx = sorted(folder.glob("*.onnx"))
    if onnx and not ggufs:
        return inspect_onnx_folder(folder, onnx)
    raise UnsupportedFormat(
        folder,
        "no single model here (no config.json, model_index.json or adapter_config.json"
        + (f", and {len(firsts)} GGUF models)" if firsts else ")"),
        hint="import one file, or use `modelyard scan` to import every model in the folder",
    )


def _safetensors_folder(folder: Path, files: list[Path]) -> Inspection:
    """Safetensors without a config: a folder of SD LoRAs, or by the name rules a model."""
    headers = [read_safetensors(f) for f in files]
    verdicts = [classify({n: t.shape for n, t in h.tensors.items()}) for h in headers]
    infos = [file_info(f) for f in files]
    if all(v.what == "lora" for v in verdicts):
        return Inspection(
            path=folder,
            format="safetensors",
            kind=ADAPTER,
            files=infos,
            facts={"lora_files": [f.name for f in files], "lora_target": verdicts[0].lora_target},
        )
    return Inspection(
        path=folder,
        format="safetensors",
        kind=MODEL,
        category=category_from_name(folder, folder=True),
        category_from="name",
        quantization=headers[0].main_dtype,
        parameters=sum(h.parameter_count for h in headers),
        files=infos,
        warnings=["no config.json: the category comes from the folder's name"],
    )


def inspect_file(path: Path) -> Inspection:
    suffix = path.suffix.lower()
    if path.name.lower().endswith(".safetensors.index.json"):
        return inspect_folder(path.parent)
    if suffix == ".gguf" or _magic(path) == b"GGUF":
        return inspect_gguf(path)
    if suffix == ".safetensors":
        return _inspect_safetensors(path)
    if suffix in hf.PICKLE_SUFFIXES:
        return _inspect_binary(path)
    if suffix == ".onnx":
        voice = piper_config(path)
        if voice is not None:
            return inspect_piper(path, path, voice)
        raise UnsupportedFormat(
            path,
            "one ONNX model on its own (no Piper config beside it)",
            hint="import the folder of the face pack it belongs to",
        )
    raise UnsupportedFormat(
        path,
        f"{suffix or 'this file'} is not a model format modelyard reads",
        hint=f"supported: {SUPPORTED}",
    )


def _magic(path: Path) -> bytes:
    return read_head(path, 4)


# -- GGUF ----------------------------------------------------------------------------------


def inspect_gguf(path: Path) -> Inspection:
    g = read_gguf(path)
    files = [file_info(path)]
    parameters = g.parameter_count
    shards = _shards(path, g)
    if shards:
        files = [file_info(s.path) for s in shards]
        parameters = sum(s.parameter_count for s in shards)
    facts = g.facts()
    if shards:
        facts["shards"] = len(shards)
    insp = Inspection(
        path=path,
        format="gguf",
        kind=MODEL,
        architecture=g.architecture,
        quantization=g.quantization,
        parameters=parameters,
        context_length=facts.get("context_length"),
        files=files,
        facts=facts,
    )
    kind = g.kind
    arch = g.architecture
    if kind == "lora":
        insp.kind = ADAPTER
        return insp
    if kind == "mmproj":
        insp.kind, insp.role = COMPONENT, ComponentRole.MMPROJ
        return insp
    if arch in TEXT_ENCODER_GGUF_ARCHS:
        insp.kind, insp.role = COMPONENT, TEXT_ENCODER_GGUF_ARCHS[arch]
        return insp
    if arch in IMAGE_GGUF_ARCHS:
        insp.template = IMAGE_GGUF_ARCHS[arch]
        insp.category = diffusion_category(insp.template)
        return insp
    pooling = g.pooling
    if pooling == "rank":
        insp.category = Category.RERANK
    elif arch in EMBEDDING_GGUF_ARCHS or pooling in ("mean", "cls", "last"):
        insp.category = Category.EMBEDDING
    else:
        insp.category = Category.CHAT
        insp.companions = _mmproj_beside(path)
        if insp.companions:
            insp.category = Category.MULTIMODAL
        elif any(w in name_text(path) for w in MULTIMODAL_WORDS):
            insp.category, insp.category_from = Category.MULTIMODAL, "name"
            insp.warnings.append("named like a multimodal model, but no mmproj file is beside it")
    return insp


def _shards(path: Path, g: GGUFFile) -> list[GGUFFile] | None:
    """All shards of a split GGUF, checked for presence and consistency; None if not split."""
    paths = shard_paths(path)
    split = g.split
    if paths is None and split is None:
        return None
    if paths is None:
        raise IncompleteModel(
            path,
            f"the file is shard {split[0] + 1 if split else '?'} of a split model but not named "
            "like one (name-00001-of-0000N.gguf)",
            hint="restore the shards' original names",
        )
    if paths[0] != path:
        raise InvalidImport(f"{path.name} is not the first shard", hint=f"import {paths[0].name}")
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise IncompleteModel(
            path,
            f"{len(missing)} of {len(paths)} shards are missing: {', '.join(missing[:5])}",
            hint="download every shard into the same folder",
        )
    shards = [g] + [read_gguf(p) for p in paths[1:]]
    total = g.get_int("split.tensors.count")
    for i, s in enumerate(shards):
        if s.split != (i, len(paths)):
            raise IncompleteModel(
                s.path,
                f"its split metadata says {s.split}, expected shard {i} of {len(paths)}",
                hint="the shards come from different conversions: download them again",
            )
    found = sum(len(s.tensors) for s in shards)
    if total is not None and found != total:
        raise IncompleteModel(
            path,
            f"the shards hold {found} tensors, the first shard says {total}",
            hint="the shards come from different conversions: download them again",
        )
    return shards


def _mmproj_beside(path: Path) -> list[Inspection]:
    """The multimodal projector next to a GGUF model, the one sharing most of its name."""
    found: list[Inspection] = []
    for p in sorted(path.parent.glob("*.gguf")):
        if p == path or "mmproj" not in p.name.lower():
            continue
        try:
            insp = inspect_gguf(p)
        except (MalformedFile, UnsupportedFormat, IncompleteModel):
            continue
        if insp.role is ComponentRole.MMPROJ:
            found.append(insp)
    if len(found) <= 1:
        return found

    def shared_prefix(other: Inspection) -> int:
        a, b = path.name.lower(), other.path.name.lower().replace("mmproj-", "")
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    return [max(found, key=shared_prefix)]


# -- other single files --------------------------------------------------------------------


def _inspect_safetensors(path: Path) -> Inspection:
    st = read_safetensors(path)
    verdict = classify({n: t.shape for n, t in st.tensors.items()})
    insp = Inspection(
        path=path,
        format="safetensors",
        kind=MODEL,
        quantization=st.main_dtype,
        parameters=st.parameter_count,
        files=[file_info(path)],
        facts={"tensor_count": len(st.tensors)},
    )
    if verdict.what == "lora":
        insp.kind = ADAPTER
        insp.facts["lora_target"] = verdict.lora_target
        return insp
    if verdict.what == "component":
        insp.kind, insp.role = COMPONENT, verdict.role
        return insp
    if verdict.what == "image":
        insp.category, insp.template = diffusion_category(verdict.template), verdict.template
        insp.architecture = verdict.variant
        return insp
    upscaler = upscaler_of(st.tensors)
    if upscaler is not None:
        insp.category, insp.architecture = Category.UPSCALE, upscaler
        return insp
    if any(n.startswith(("model.layers.", "transformer.h.", "layers.0.")) for n in st.tensors):
        raise UnsupportedFormat(
            path,
            "a language model's weights without their folder (config.json, tokenizer)",
            hint="import the folder that holds this file",
        )
    insp.category, insp.category_from = category_from_name(path, folder=False), "name"
    insp.warnings.append("tensor names say nothing known: the category comes from the file name")
    return insp


def _inspect_binary(path: Path) -> Inspection:
    head = _magic(path)
    if head in GGML_MAGICS:
        return Inspection(
            path=path,
            format="ggml",
            kind=MODEL,
            category=Category.MULTIMODAL
            if any(w in name_text(path) for w in MULTIMODAL_WORDS)
            else Category.CHAT,
            category_from="name",
            files=[file_info(path)],
            facts={"container": GGML_MAGICS[head]},
            warnings=["legacy GGML file: current llama.cpp loads only GGUF; convert it to GGUF"],
        )
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise UnsupportedFormat(
            path, "neither GGUF, GGML nor a PyTorch pickle", hint=f"supported: {SUPPORTED}"
        )
    names = tensor_names(path) if head.startswith(b"PK") else None
    upscaler = upscaler_of(names) if names else None
    if upscaler is not None:
        return Inspection(
            path=path,
            format="pytorch",
            kind=MODEL,
            category=Category.UPSCALE,
            architecture=upscaler,
            unsafe=True,
            files=[file_info(path)],
            warnings=["PyTorch pickle: spandrel loads it with a restricted unpickler; safetensors is safer"],
        )
    text = name_text(path)
    if path.suffix.lower() == ".ckpt" or any(w in text for w in IMAGE_WORDS):
        category = Category.IMAGE
    else:
        category = category_from_name(path, folder=False)
    return Inspection(
        path=path,
        format="pytorch",
        kind=MODEL,
        category=category,
        category_from="name",
        unsafe=True,
        files=[file_info(path)],
        warnings=[
            "PyTorch pickle: loading it can run arbitrary code; modelyard never unpickles "
            "while inspecting; prefer a safetensors or GGUF version"
        ],
    )
