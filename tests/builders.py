"""Tiny models the tests build themselves: GGUF (model, LoRA, mmproj, shards), safetensors,
Hugging Face, sentence-transformers, cross-encoder, PEFT and diffusers folders, SD checkpoints."""

from __future__ import annotations

import functools
import json
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import gguf
import numpy as np
from safetensors.numpy import save_file

_rng = np.random.default_rng(0)
P = ParamSpec("P")
R = TypeVar("R")


def _seeded(build: Callable[Concatenate[Path, P], R]) -> Callable[Concatenate[Path, P], R]:
    """A builder whose random weights come from its file's (or folder's) own name: the same
    model whatever was built before it, in any order of the tests."""

    @functools.wraps(build)
    def seeded(path: Path, /, *args: P.args, **kwargs: P.kwargs) -> R:
        global _rng
        _rng = np.random.default_rng(zlib.crc32(Path(path).name.encode()))
        return build(path, *args, **kwargs)

    return seeded


# A chat template for the tiny chat models: llama-server's Jinja engine formats messages with it.
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def _rand(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return (_rng.standard_normal(shape) * 0.02).astype(dtype)


# -- GGUF ------------------------------------------------------------------------------------

TINY = {"n_embd": 64, "n_head": 4, "n_head_kv": 2, "n_layer": 2, "n_ff": 128, "ctx": 512}


FIM = ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]


def _spm_vocab() -> tuple[list[str], list[float], list[int]]:
    """A small SentencePiece-style vocabulary llama.cpp accepts: specials, bytes, a few pieces."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]  # unknown, control, control
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # byte
    pieces = [
        "▁",
        "▁the",
        "▁a",
        "e",
        "t",
        "o",
        "n",
        "s",
        "▁hello",
        "▁world",
        "▁model",
        "a",
        "i",
        "r",
        "h",
        "l",
    ]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, types


def _llama_tensors(
    n_embd: int, n_head: int, n_head_kv: int, n_layer: int, n_ff: int, vocab: int
) -> dict[str, np.ndarray]:
    head_dim = n_embd // n_head
    t: dict[str, np.ndarray] = {
        "token_embd.weight": _rand(vocab, n_embd),
        "output_norm.weight": np.ones(n_embd, dtype=np.float32),
        "output.weight": _rand(vocab, n_embd),
    }
    for i in range(n_layer):
        p = f"blk.{i}"
        t[f"{p}.attn_norm.weight"] = np.ones(n_embd, dtype=np.float32)
        t[f"{p}.attn_q.weight"] = _rand(n_embd, n_embd)
        t[f"{p}.attn_k.weight"] = _rand(n_head_kv * head_dim, n_embd)
        t[f"{p}.attn_v.weight"] = _rand(n_head_kv * head_dim, n_embd)
        t[f"{p}.attn_output.weight"] = _rand(n_embd, n_embd)
        t[f"{p}.ffn_norm.weight"] = np.ones(n_embd, dtype=np.float32)
        t[f"{p}.ffn_gate.weight"] = _rand(n_ff, n_embd)
        t[f"{p}.ffn_up.weight"] = _rand(n_ff, n_embd)
        t[f"{p}.ffn_down.weight"] = _rand(n_embd, n_ff)
    return t


@_seeded
def write_llama_gguf(
    path: Path,
    *,
    arch: str = "llama",
    name: str = "Tiny Llama",
    n_embd: int = TINY["n_embd"],
    n_layer: int = TINY["n_layer"],
    quant: str = "F32",
    chat_template: str | None = None,
    pooling: int | None = None,
    shards: int = 1,
    fim: bool = False,
    ctx: int = TINY["ctx"],
) -> list[Path]:
    """A small llama-architecture GGUF with random weights that llama.cpp can load (trained
    for a context of ``ctx``).

    quant: F32, F16 or Q8_0 (2D weights are stored that way, norms stay F32).
    shards > 1 writes name-0000i-of-0000N.gguf files and returns them all.
    fim: with fill-in-the-middle tokens (prefix, suffix, middle), as code models have.
    """
    tokens, scores, types = _spm_vocab()
    if fim:
        tokens, scores, types = tokens + FIM, scores + [0.0] * 3, types + [3] * 3  # control tokens
    tensors = _llama_tensors(n_embd, TINY["n_head"], TINY["n_head_kv"], n_layer, TINY["n_ff"], len(tokens))
    file_type = {"F32": 0, "F16": 1, "Q8_0": 7}[quant]
    names = list(tensors)
    groups = [names[i::shards] for i in range(shards)]
    if shards > 1:
        stem = path.name.removesuffix(".gguf")
        paths = [path.with_name(f"{stem}-{i + 1:05d}-of-{shards:05d}.gguf") for i in range(shards)]
    else:
        paths = [path]
    path.parent.mkdir(parents=True, exist_ok=True)
    for i, (out, group) in enumerate(zip(paths, groups, strict=True)):
        w = gguf.GGUFWriter(str(out), arch)
        if shards > 1:
            w.add_uint16("split.no", i)
            w.add_uint16("split.count", shards)
            w.add_int32("split.tensors.count", len(names))
        if i == 0:
            w.add_name(name)
            w.add_file_type(file_type)
            w.add_context_length(ctx)
            w.add_embedding_length(n_embd)
            w.add_block_count(n_layer)
            w.add_feed_forward_length(TINY["n_ff"])
            w.add_head_count(TINY["n_head"])
            w.add_head_count_kv(TINY["n_head_kv"])
            w.add_layer_norm_rms_eps(1e-5)
            w.add_rope_freq_base(10000.0)
            w.add_tokenizer_model("llama")
            w.add_token_list(tokens)
            w.add_token_scores(scores)
            w.add_token_types(types)
            w.add_bos_token_id(1)
            w.add_eos_token_id(2)
            w.add_unk_token_id(0)
            if chat_template:
                w.add_chat_template(chat_template)
            if fim:
                for role, token in zip(("pre", "suf", "mid"), FIM, strict=True):
                    w.add_uint32(f"tokenizer.ggml.fim_{role}_token_id", tokens.index(token))
            if pooling is not None:
                w.add_pooling_type(gguf.PoolingType(pooling))
        for tname in group:
            data = tensors[tname]
            if data.ndim == 2 and quant == "F16":
                w.add_tensor(tname, data.astype(np.float16))
            elif data.ndim == 2 and quant == "Q8_0":
                q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
                w.add_tensor(tname, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                w.add_tensor(tname, data)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return paths


@_seeded
def write_lora_gguf(path: Path, *, arch: str = "llama", n_embd: int = TINY["n_embd"], rank: int = 4) -> Path:
    """A GGUF LoRA for the tiny llama: attn_q and attn_v of every layer."""
    head_dim = TINY["n_embd"] // TINY["n_head"]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    for i in range(TINY["n_layer"]):
        for target, out in (("attn_q", n_embd), ("attn_v", TINY["n_head_kv"] * head_dim)):
            w.add_tensor(f"blk.{i}.{target}.weight.lora_a", _rand(rank, n_embd))
            w.add_tensor(f"blk.{i}.{target}.weight.lora_b", _rand(out, rank))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@_seeded
def write_mmproj_gguf(path: Path, n_embd_text: int = TINY["n_embd"]) -> Path:
    """A LLaVA-style (projector "mlp") CLIP projector that llama.cpp really loads and runs: one
    vision block on 32x32 images in 8x8 patches (16 image tokens), projected to the tiny llama."""
    d, ff, image, patch = 16, 32, 32, 8
    n = (image // patch) ** 2
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("general.type", "mmproj")
    w.add_string("clip.projector_type", "mlp")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.image_size", image)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", d)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.projection_dim", n_embd_text)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    w.add_uint32("clip.vision.block_count", 1)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
    w.add_tensor("v.patch_embd.weight", _rand(d, 3, patch, patch))
    w.add_tensor("v.class_embd", _rand(d))
    w.add_tensor("v.position_embd.weight", _rand(n + 1, d))
    w.add_tensor("v.pre_ln.weight", ones)
    w.add_tensor("v.pre_ln.bias", zeros)
    for t in ("attn_q", "attn_k", "attn_v", "attn_out"):
        w.add_tensor(f"v.blk.0.{t}.weight", _rand(d, d))
        w.add_tensor(f"v.blk.0.{t}.bias", zeros)
    for t in ("ln1", "ln2"):
        w.add_tensor(f"v.blk.0.{t}.weight", ones)
        w.add_tensor(f"v.blk.0.{t}.bias", zeros)
    w.add_tensor("v.blk.0.ffn_up.weight", _rand(ff, d))
    w.add_tensor("v.blk.0.ffn_up.bias", np.zeros(ff, np.float32))
    w.add_tensor("v.blk.0.ffn_down.weight", _rand(d, ff))
    w.add_tensor("v.blk.0.ffn_down.bias", zeros)
    w.add_tensor("mm.0.weight", _rand(n_embd_text, d))
    w.add_tensor("mm.0.bias", np.zeros(n_embd_text, np.float32))
    w.add_tensor("mm.2.weight", _rand(n_embd_text, n_embd_text))
    w.add_tensor("mm.2.bias", np.zeros(n_embd_text, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (48, 48)) -> bytes:
    """A plain-coloured PNG image."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def write_onnx(path: Path) -> Path:
    """A small ONNX model (a linear layer, 8 in and 4 out), as torch's exporter writes it."""
    import warnings

    import torch

    with warnings.catch_warnings():  # the TorchScript exporter (the new one needs onnxscript)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            torch.nn.Linear(8, 4),
            (torch.zeros(1, 8),),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamo=False,
        )
    return path


def write_ctranslate2_bin(path: Path, variables: dict[str, tuple[int, ...]] | None = None) -> Path:
    """A CTranslate2 model.bin as its converter writes one: the version, a WhisperSpec, float32
    variables (zeros), no aliases."""
    import struct

    def text(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    variables = variables or {"encoder/conv1/weight": (4, 2, 3), "decoder/embeddings/weight": (10, 4)}
    out = struct.pack("<I", 6) + text("WhisperSpec") + struct.pack("<II", 1, len(variables))
    for name, shape in variables.items():
        count = int(np.prod(shape))
        out += text(name) + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
        out += struct.pack("<BI", 0, count * 4) + bytes(count * 4)
    path.write_bytes(out + struct.pack("<I", 0))
    return path


def noise_picture(seed: int, size: tuple[int, int] = (48, 40)) -> Any:
    """A PIL image of random pixels (each picture its own, for models that tell them apart)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_of(image: Any) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_url(image: Any) -> str:
    """A PIL image as the data URL the image routes take."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_of(image)).decode()


# -- Hugging Face folders --------------------------------------------------------------------


def _json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


@_seeded
def write_hf_llama(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    extra: dict[str, Any] | None = None,
    dtype: Any = np.float16,
    shards: int = 1,
) -> Path:
    """A transformers LlamaForCausalLM folder with random weights."""
    vocab, inter = 128, 128
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "vocab_size": vocab,
        "torch_dtype": "float16",
    }
    config.update(extra or {})
    _json(folder / "config.json", config)
    kv = 2 * (hidden // 4)
    t = {
        "model.embed_tokens.weight": _rand(vocab, hidden, dtype=dtype),
        "lm_head.weight": _rand(vocab, hidden, dtype=dtype),
    }
    for i in range(layers):
        p = f"model.layers.{i}"
        t[f"{p}.self_attn.q_proj.weight"] = _rand(hidden, hidden, dtype=dtype)
        t[f"{p}.self_attn.k_proj.weight"] = _rand(kv, hidden, dtype=dtype)
        t[f"{p}.self_attn.v_proj.weight"] = _rand(kv, hidden, dtype=dtype)
        t[f"{p}.self_attn.o_proj.weight"] = _rand(hidden, hidden, dtype=dtype)
        t[f"{p}.mlp.gate_proj.weight"] = _rand(inter, hidden, dtype=dtype)
    if shards == 1:
        save_file(t, str(folder / "model.safetensors"))
    else:
        names = sorted(t)
        weight_map = {}
        for i in range(shards):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: t[n] for n in names[i::shards]}
            save_file(part, str(folder / fname))
            weight_map.update(dict.fromkeys(part, fname))
        _json(folder / "model.safetensors.index.json", {"metadata": {}, "weight_map": weight_map})
    return folder


@_seeded
def write_bert(
    folder: Path,
    *,
    architectures: list[str],
    num_labels: int | None = None,
    sentence_transformers: bool = False,
) -> Path:
    config: dict[str, Any] = {
        "architectures": architectures,
        "model_type": "bert",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 512,
        "vocab_size": 100,
    }
    if num_labels is not None:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    _json(folder / "config.json", config)
    t = {
        "embeddings.word_embeddings.weight": _rand(100, 32),
        "encoder.layer.0.attention.self.query.weight": _rand(32, 32),
    }
    if num_labels is not None:
        t["classifier.weight"] = _rand(num_labels, 32)
    save_file(t, str(folder / "model.safetensors"))
    if sentence_transformers:
        _json(folder / "sentence_bert_config.json", {"max_seq_length": 256, "do_lower_case": False})
        (folder / "modules.json").write_text(
            json.dumps(
                [
                    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_Pooling",
                        "type": "sentence_transformers.models.Pooling",
                    },
                ]
            )
        )
    return folder


@_seeded
def write_peft(
    folder: Path, *, hidden: int = 64, rank: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj")
) -> Path:
    """A PEFT LoRA folder for the tiny HF llama (hidden size must match to fit)."""
    _json(
        folder / "adapter_config.json",
        {
            "peft_type": "LORA",
            "base_model_name_or_path": "tiny/llama",
            "task_type": "CAUSAL_LM",
            "r": rank,
            "lora_alpha": 16,
            "target_modules": list(targets),
        },
    )
    kv = 2 * (hidden // 4)
    t = {}
    for i in range(2):
        for target in targets:
            out = hidden if target == "q_proj" else kv
            base = f"base_model.model.model.layers.{i}.self_attn.{target}"
            t[f"{base}.lora_A.weight"] = _rand(rank, hidden)
            t[f"{base}.lora_B.weight"] = _rand(out, rank)
    save_file(t, str(folder / "adapter_model.safetensors"))
    return folder


@_seeded
def write_diffusers(folder: Path, pipeline: str = "FluxPipeline") -> Path:
    _json(
        folder / "model_index.json",
        {
            "_class_name": pipeline,
            "_diffusers_version": "0.30.0",
            "transformer": ["diffusers", "FluxTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        },
    )
    _json(folder / "transformer" / "config.json", {"_class_name": "FluxTransformer2DModel"})
    save_file(
        {"x_embedder.weight": _rand(32, 16, dtype=np.float16)},
        str(folder / "transformer" / "diffusion_pytorch_model.safetensors"),
    )
    _json(folder / "vae" / "config.json", {"_class_name": "AutoencoderKL"})
    save_file(
        {"decoder.conv_out.weight": _rand(3, 8, 3, 3, dtype=np.float16)},
        str(folder / "vae" / "diffusion_pytorch_model.safetensors"),
    )
    return folder


# -- single files ------------------------------------------------------------------------------


@_seeded
def write_safetensors(path: Path, tensors: dict[str, tuple[int, ...]], dtype: Any = np.float16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({n: _rand(*s, dtype=dtype) for n, s in tensors.items()}, str(path))
    return path


SDXL_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
    "conditioner.embedders.1.model.ln_final.weight": (1280,),
    "first_stage_model.decoder.conv_out.weight": (3, 8, 3, 3),
}
FLUX_KEYS = {"double_blocks.0.img_attn.qkv.weight": (96, 32), "single_blocks.0.linear1.weight": (64, 32)}
WAN_KEYS = {"patch_embedding.weight": (32, 16, 1, 2, 2), "blocks.0.cross_attn.k.weight": (32, 32)}
VAE_KEYS = {"encoder.conv_in.weight": (8, 3, 3, 3), "decoder.conv_out.weight": (3, 8, 3, 3)}
CLIP_L_KEYS = {
    "text_model.embeddings.token_embedding.weight": (100, 768),
    "text_model.final_layer_norm.weight": (768,),
}
CLIP_G_KEYS = {
    "text_model.embeddings.token_embedding.weight": (100, 1280),
    "text_model.final_layer_norm.weight": (1280,),
}
T5_KEYS = {"shared.weight": (100, 64), "encoder.block.0.layer.0.SelfAttention.q.weight": (64, 64)}
SD_LORA_KEYS = {
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 32),
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (32, 4),
}


def write_pickle(path: Path) -> Path:
    """A pickle file. It is never loaded by modelyard; the tests only check it is refused to load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weight": [0.0] * 8}, protocol=4))
    return path


def managed_env(home: Path, backend: str, variant: str) -> Path:
    """What `modelyard backends install BACKEND --variant VARIANT` leaves: a virtualenv (its
    python a stub) and its marker."""
    env = home / "envs" / f"{backend}-{variant}-1"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("#!/bin/sh\n")
    (env / "bin" / "python").chmod(0o755)
    (env / "modelyard-env.json").write_text(json.dumps({"backend": backend, "variant": variant}))
    return env
