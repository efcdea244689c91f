"""A new model as GGUF (F16 or Q8_0), written with the `gguf` package, so that llama.cpp runs it
too. Runs in the export's environment: numpy and gguf, tensors from torch."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from modelyard.create.design import FAMILIES, Design

TYPES = {"F16": gguf.LlamaFileType.MOSTLY_F16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


@dataclass(frozen=True)
class Vocabulary:
    model: str  # llama (SentencePiece) or gpt2 (byte-level BPE)
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None


@dataclass(frozen=True)
class SpecialTokens:
    bos: int | None
    eos: int | None
    unk: int | None
    pad: int | None
    add_bos: bool
    chat_template: str | None


def gguf_name(name: str, qtype: str) -> str:
    return f"{name}.{qtype}.gguf"


def vocabulary(folder: Path) -> Vocabulary:
    """The tokenizer saved in ``folder`` as llama.cpp takes it."""
    spm = folder / "tokenizer.model"
    if spm.is_file():
        return _sentencepiece(spm)
    data = json.loads((folder / "tokenizer.json").read_text())
    model = data["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"a {model.get('type')} tokenizer cannot go into a GGUF (BPE or SentencePiece only)")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in data.get("added_tokens") or []:
        by_id[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(max(by_id) + 1)]
    kinds = [
        types.get(i, gguf.TokenType.NORMAL if i in by_id else gguf.TokenType.UNUSED)
        for i in range(len(tokens))
    ]
    if model.get("byte_fallback"):  # a SentencePiece model carried in tokenizer.json
        for i, t in enumerate(tokens):
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                kinds[i] = gguf.TokenType.BYTE
            elif t == model.get("unk_token"):
                kinds[i] = gguf.TokenType.UNKNOWN
        return Vocabulary("llama", tokens, kinds, scores=[-float(i) for i in range(len(tokens))])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return Vocabulary("gpt2", tokens, kinds, merges=merges)


def _sentencepiece(path: Path) -> Vocabulary:
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(path.read_bytes())
    # SentencePiece's piece types are numbered as GGUF's token types (normal 1 ... byte 6)
    return Vocabulary(
        "llama",
        [p.piece for p in proto.pieces],
        [int(p.type) for p in proto.pieces],
        scores=[float(p.score) for p in proto.pieces],
    )


def _padded(v: Vocabulary, size: int) -> Vocabulary:
    """The embedding has ``size`` rows; llama.cpp wants a token for each."""
    if len(v.tokens) > size:
        raise ValueError(f"the tokenizer has {len(v.tokens)} tokens and the model {size} rows")
    extra = range(len(v.tokens), size)
    return Vocabulary(
        v.model,
        v.tokens + [f"[PAD{i}]" for i in extra],
        v.types + [gguf.TokenType.UNUSED] * len(extra),
        None if v.scores is None else v.scores + [-1000.0] * len(extra),
        v.merges,
    )


def _permute(w: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """Rotate-half rows (Hugging Face) to adjacent pairs (llama.cpp's llama graph), per head."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensors(state: Iterable[tuple[str, Any]], design: Design) -> Iterable[tuple[str, np.ndarray[Any, Any]]]:
    """(GGUF name, float32 array) for each Hugging Face tensor."""
    family = FAMILIES[design.family]
    for name, value in state:
        array = value.detach().float().cpu().numpy()
        if name in TOP:
            yield TOP[name], array
            continue
        prefix, _, rest = name.partition(".layers.")
        index, _, part = rest.partition(".")
        if prefix != "model" or part not in LAYER:
            raise ValueError(f"no GGUF name for {name}")
        if family.permute_qk and part == "self_attn.q_proj.weight":
            array = _permute(array, design.heads)
        elif family.permute_qk and part == "self_attn.k_proj.weight":
            array = _permute(array, design.kv_heads)
        yield f"blk.{index}.{LAYER[part]}", array


def write(
    path: Path,
    name: str,
    design: Design,
    state: list[tuple[str, Any]],
    vocab: Vocabulary,
    special: SpecialTokens,
    qtype: str,
    progress: Callable[[float], None],
) -> None:
    family = FAMILIES[design.family]
    arch = family.gguf_arch
    vocab = _padded(vocab, design.vocab_size)
    if design.tied_embeddings:  # llama.cpp uses the embedding as the output when there is none
        state = [(n, t) for n, t in state if n != "lm_head.weight"]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_file_type(TYPES[qtype])
    w.add_vocab_size(design.vocab_size)
    w.add_context_length(design.context_length)
    w.add_embedding_length(design.hidden_size)
    w.add_block_count(design.layers)
    w.add_feed_forward_length(design.ffn_size)
    w.add_head_count(design.heads)
    w.add_head_count_kv(design.kv_heads)
    w.add_key_length(design.head_dim)
    w.add_value_length(design.head_dim)
    w.add_rope_dimension_count(design.head_dim)
    w.add_rope_freq_base(family.rope_theta)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model(vocab.model)
    w.add_tokenizer_pre("gpt-2" if vocab.model == "gpt2" else "default")
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    if vocab.scores is not None:
        w.add_token_scores(vocab.scores)
    if vocab.merges is not None:
        w.add_token_merges(vocab.merges)
    for key, value in (
        ("bos", special.bos),
        ("eos", special.eos),
        ("unk", special.unk),
        ("pad", special.pad),
    ):
        if value is not None:
            getattr(w, f"add_{key}_token_id")(value)
    w.add_add_bos_token(special.add_bos)
    if special.chat_template:
        w.add_chat_template(special.chat_template)
    for i, (gname, array) in enumerate(tensors(state, design)):
        if array.ndim == 1:
            w.add_tensor(gname, array.astype(np.float32))
        elif qtype == "Q8_0":
            w.add_tensor(gname, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            w.add_tensor(gname, array.astype(np.float16))
        if (i + 1) % max(1, len(state) // 10) == 0:
            progress(0.8 * (i + 1) / len(state))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    progress(1.0)
