"""Hugging Face folders: transformers and sentence-transformers models, PEFT adapters and
diffusers pipelines, read from their JSON configs and safetensors headers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from modelyard.categories import Category, Template, diffusion_category
from modelyard.errors import IncompleteModel, MalformedFile
from modelyard.formats.inspection import ADAPTER, MODEL, Inspection, category_from_name, file_info
from modelyard.formats.safetensors import (
    SafetensorsFile,
    TensorHeader,
    read_index,
    read_safetensors,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
VISION_KEYS = ("vision_config", "visual", "image_token_index", "image_token_id", "mm_vision_tower")
AUDIO_TYPES = ("whisper", "wav2vec2", "hubert", "speech_to_text", "seamless_m4t", "moonshine")
# speech recognition: sequence-to-sequence models, and encoders with a CTC head
SPEECH_TO_TEXT_TYPES = ("whisper", "speech_to_text", "moonshine")
TEXT_TO_SPEECH_TYPES = ("vits",)  # end to end: text in, a waveform out
# image to text: captioners (TrOCR and Donut are vision-encoder-decoder too: they read text)
CAPTIONING_TYPES = ("blip", "git", "vision-encoder-decoder")
ENCODER_TYPES = (
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "mpnet",
    "nomic_bert",
    "modernbert",
    "electra",
    "deberta",
    "deberta-v2",
    "camembert",
    "new",
)
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
BPW_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*bpw", re.IGNORECASE)
LABEL_OF_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise MalformedFile(path, f"not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MalformedFile(path, "not a JSON object")
    return data


# -- weights -------------------------------------------------------------------------------


def read_weights(folder: Path) -> tuple[list[SafetensorsFile], list[Path]]:
    """The folder's safetensors (all shards, checked), or else its pickled weight files."""
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        return read_index(indexes[0]).shards, [indexes[0]]
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return [read_safetensors(f) for f in files], []
    pickles = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    return [], pickles


def _shapes(shards: list[SafetensorsFile]) -> dict[str, TensorHeader]:
    merged: dict[str, TensorHeader] = {}
    for s in shards:
        merged.update(s.tensors)
    return merged


def _dtype_label(shards: list[SafetensorsFile], config: dict[str, Any]) -> str | None:
    counts: dict[str, int] = {}
    for s in shards:
        for dtype, n in s.dtype_counts().items():
            counts[dtype] = counts.get(dtype, 0) + n
    if counts:
        return max(counts, key=lambda k: counts[k])
    configured = config.get("torch_dtype") or config.get("dtype")
    return LABEL_OF_DTYPE.get(str(configured)) if configured else None


# -- quantization --------------------------------------------------------------------------


def quantization_of(
    folder: Path, config: dict[str, Any], tensors: dict[str, TensorHeader]
) -> tuple[str | None, dict[str, Any]]:
    """(method, facts) from quantization_config, or EXL2's tensor names; (None, {}) when the
    weights are full precision."""
    qc = config.get("quantization_config")
    if isinstance(qc, dict):
        method = str(qc.get("quant_method", "")).lower() or None
        facts: dict[str, Any] = {}
        if method == "bitsandbytes" or qc.get("load_in_4bit") or qc.get("load_in_8bit"):
            method = "bitsandbytes"
            facts["bits"] = 4 if qc.get("load_in_4bit") else 8
            if facts["bits"] == 4:
                facts["quant_type"] = qc.get("bnb_4bit_quant_type", "fp4")
        elif method == "exl2":
            facts["bpw"] = qc.get("bits")
        else:
            bits = qc.get("bits", qc.get("w_bit"))
            if bits is not None:
                facts["bits"] = bits
            group = qc.get("group_size", qc.get("q_group_size"))
            if group is not None:
                facts["group_size"] = group
            if method == "awq" and "bits" not in facts:
                facts["bits"] = 4  # AWQ is 4-bit unless it says otherwise
        return method, {k: v for k, v in facts.items() if v is not None}
    if any(n.endswith((".q_weight", ".q_scale")) or ".q_groups" in n for n in tensors):
        m = BPW_NAME.search(folder.name)
        return "exl2", {"bpw": float(m.group(1))} if m else {}
    if any(n.endswith(".qweight") for n in tensors) and any(n.endswith(".qzeros") for n in tensors):
        # an AutoGPTQ checkpoint of before quantization_config: its quantize_config.json, or nothing
        old = folder / "quantize_config.json"
        qc = load_json(old) if old.is_file() else {}
        facts = {"bits": qc.get("bits"), "group_size": qc.get("group_size"), "desc_act": qc.get("desc_act"),
                 "quantize_config": old.is_file()}  # fmt: skip
        return "gptq", {k: v for k, v in facts.items() if v is not None}
    return None, {}


def quantization_label(method: str | None, facts: dict[str, Any], dtype: str | None) -> str | None:
    if method is None:
        return dtype
    if method == "exl2":
        return f"EXL2 {facts['bpw']:g}bpw" if facts.get("bpw") else "EXL2"
    if method == "bitsandbytes":
        kind = f" {facts['quant_type']}" if "quant_type" in facts else ""
        return f"bnb {facts['bits']}-bit{kind}"
    label = method.upper()
    if "bits" in facts:
        label += f" {facts['bits']}-bit"
    if "group_size" in facts:
        label += f" g{facts['group_size']}"
    return label


# -- folders -------------------------------------------------------------------------------


def inspect_hf_model(folder: Path) -> Inspection:
    """A folder with config.json: a transformers or sentence-transformers model."""
    config = load_json(folder / "config.json")
    shards, others = read_weights(folder)
    if not shards and not others:
        raise IncompleteModel(
            folder,
            "config.json is there but no weights (*.safetensors)",
            hint="download the weights",
        )
    tensors = _shapes(shards)
    archs = [str(a) for a in config.get("architectures") or []]
    model_type = str(config.get("model_type") or "") or None
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    method, qfacts = quantization_of(folder, config, tensors)
    dtype = _dtype_label(shards, config)
    category, from_name = _hf_category(folder, config, archs, model_type)

    context = next((config[k] for k in CONTEXT_KEYS if isinstance(config.get(k), int)), None)
    if context is None and text_config:
        context = next((text_config[k] for k in CONTEXT_KEYS if isinstance(text_config.get(k), int)), None)
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_seq = load_json(st_config).get("max_seq_length")
        if isinstance(max_seq, int):
            context = max_seq
    source = config if config.get("num_hidden_layers") else text_config or config
    facts: dict[str, Any] = {
        "architectures": archs,
        "model_type": model_type,
        "block_count": source.get("num_hidden_layers"),
        "embedding_length": source.get("hidden_size"),
        "head_count": source.get("num_attention_heads"),
        "head_count_kv": source.get("num_key_value_heads"),
        "key_length": source.get("head_dim"),
        "sliding_window": source.get("sliding_window"),
        "vocab_size": source.get("vocab_size"),
        "torch_dtype": config.get("torch_dtype") or config.get("dtype"),
        "dtype": dtype,
        "quant_method": method,
        **qfacts,
        "sentence_transformers": (folder / "modules.json").is_file(),
        "labels": _labels(config) if category in (Category.RERANK, Category.CLASSIFICATION) else None,
    }
    files = [file_info(s.path) for s in shards] + [file_info(p) for p in others]
    insp = Inspection(
        path=folder,
        format="safetensors" if shards else "pytorch",
        kind=MODEL,
        category=category,
        category_from="name" if from_name else "metadata",
        architecture=model_type or (archs[0] if archs else None),
        quantization=quantization_label(method, qfacts, dtype),
        parameters=sum(s.parameter_count for s in shards) or None,
        context_length=context,
        unsafe=not shards,
        files=files,
        facts={k: v for k, v in facts.items() if v is not None},
    )
    if not shards:
        insp.warnings.append(
            "weights are pickles (.bin/.pt): modelyard never unpickles them; prefer safetensors"
        )
    if method == "gptq" and "bits" not in qfacts:
        insp.warnings.append(
            "GPTQ weights without a quantize config: set wbits, groupsize and desc_act in the model's settings"
        )
    return insp


def _labels(config: dict[str, Any]) -> int:
    id2label = config.get("id2label")
    if isinstance(config.get("num_labels"), int):
        return int(config["num_labels"])
    return len(id2label) if isinstance(id2label, dict) and id2label else 2


def _hf_category(
    folder: Path, config: dict[str, Any], archs: list[str], model_type: str | None
) -> tuple[Category, bool]:
    """(category, decided by name only)."""
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return (Category.RERANK if _labels(config) == 1 else Category.CLASSIFICATION), False
    if (folder / "modules.json").is_file():
        return Category.EMBEDDING, False
    if model_type in CAPTIONING_TYPES:
        return Category.CAPTIONING, False
    if any(k in config for k in VISION_KEYS) or any(
        a.endswith(("ForVision2Seq", "ForImageTextToText")) for a in archs
    ):
        return Category.MULTIMODAL, False
    if model_type in SPEECH_TO_TEXT_TYPES or (
        model_type in AUDIO_TYPES and any(a.endswith("ForCTC") for a in archs)
    ):
        return Category.SPEECH_TO_TEXT, False
    if model_type in TEXT_TO_SPEECH_TYPES:
        return Category.TEXT_TO_SPEECH, False
    if model_type in AUDIO_TYPES:
        return Category.AUDIO, False
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        return Category.CHAT, False
    if model_type in ENCODER_TYPES or any(a.endswith(("Model", "ForMaskedLM")) for a in archs):
        return Category.EMBEDDING, False
    return category_from_name(folder, folder=True), True


def inspect_peft(folder: Path) -> Inspection:
    """A PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."""
    config = load_json(folder / "adapter_config.json")
    weights = folder / "adapter_model.safetensors"
    files = []
    shapes: dict[str, tuple[int, ...]] = {}
    unsafe = False
    if weights.is_file():
        st = read_safetensors(weights)
        shapes = {n: t.shape for n, t in st.tensors.items()}
        files.append(file_info(weights))
    else:
        pickled = folder / "adapter_model.bin"
        if not pickled.is_file():
            raise IncompleteModel(
                folder,
                "adapter_config.json is there but no adapter_model.safetensors",
                hint="download the adapter weights",
            )
        files.append(file_info(pickled))
        unsafe = True
    targets = config.get("target_modules")
    facts: dict[str, Any] = {
        "peft_type": config.get("peft_type"),
        "base_model": config.get("base_model_name_or_path"),
        "task_type": config.get("task_type"),
        "r": config.get("r"),
        "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "shapes": {n: list(s) for n, s in shapes.items()},
    }
    return Inspection(
        path=folder,
        format="peft",
        kind=ADAPTER,
        parameters=sum(_numel(s) for s in shapes.values()) or None,
        unsafe=unsafe,
        files=files,
        facts={k: v for k, v in facts.items() if v is not None},
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def diffusers_template(class_name: str) -> Template:
    """The template of a diffusers pipeline class: video pipelines (HunyuanVideo, Wan, LTX,
    CogVideoX, Mochi; HunyuanDiT draws images), Flux, else the SD family's."""
    lowered = class_name.lower()
    if any(w in lowered for w in ("video", "wan", "ltx", "mochi")):
        return Template.VIDEO
    if "flux" in lowered:
        return Template.FLUX
    return Template.SD_OFFICIAL


def inspect_diffusers(folder: Path) -> Inspection:
    """A diffusers pipeline folder (model_index.json and one subfolder per part)."""
    index = load_json(folder / "model_index.json")
    class_name = str(index.get("_class_name", ""))
    parts = sorted(k for k, v in index.items() if not k.startswith("_") and isinstance(v, list))
    params = 0
    files = []
    dtype_counts: dict[str, int] = {}
    for part in parts:
        sub = folder / part
        if not sub.is_dir():
            continue
        shards, _ = read_weights(sub)
        for s in shards:
            params += s.parameter_count
            files.append(file_info(s.path))
            for dtype, n in s.dtype_counts().items():
                dtype_counts[dtype] = dtype_counts.get(dtype, 0) + n
    if not files:
        raise IncompleteModel(
            folder,
            "model_index.json is there but no part has safetensors weights",
            hint="download the pipeline's weights",
        )
    template = diffusers_template(class_name)
    return Inspection(
        path=folder,
        format="diffusers",
        kind=MODEL,
        category=diffusion_category(template),
        architecture=class_name or None,
        quantization=max(dtype_counts, key=lambda k: dtype_counts[k]) if dtype_counts else None,
        parameters=params or None,
        template=template,
        files=files,
        facts={"pipeline": class_name, "parts": parts},
    )
