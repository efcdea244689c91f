"""A new model's shape (Design), its exact parameter count, the Hugging Face config it exports
as, and the checks on the shape alone. Pure: no torch, no files; the preview runs it on every
keystroke."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
VOCAB = (10_000, 100_000)
HIDDEN = (128, 8192)
LAYERS = (1, 128)
HEADS = (1, 128)
FFN = (32, 65_536)
CONTEXT = (128, 131_072)
PARAMETERS = (1_000_000, 100_000_000_000)  # a sane range: 1M to 100B


@dataclass(frozen=True)
class Family:
    """An architecture family transformers has a config for, and how it lands in GGUF."""

    name: str
    architecture: str  # config.json "architectures"
    model_type: str
    gguf_arch: str  # llama.cpp's name
    qkv_bias: bool = False  # q, k and v projections with a bias (Qwen2)
    qk_norm: bool = False  # an RMSNorm on each head's query and key (Qwen3)
    rope_theta: float = 10_000.0
    # llama.cpp's "llama" graph rotates adjacent pairs: the q and k rows of a Hugging Face
    # checkpoint (rotate-half) are permuted on the way to GGUF
    permute_qk: bool = False


FAMILIES = {
    f.name: f
    for f in (
        Family("llama", "LlamaForCausalLM", "llama", "llama", permute_qk=True),
        Family("mistral", "MistralForCausalLM", "mistral", "llama", permute_qk=True),
        Family("qwen2", "Qwen2ForCausalLM", "qwen2", "qwen2", qkv_bias=True, rope_theta=1_000_000.0),
        Family("qwen3", "Qwen3ForCausalLM", "qwen3", "qwen3", qk_norm=True, rope_theta=1_000_000.0),
    )
}


@dataclass(frozen=True)
class Design:
    family: str = "llama"
    vocab_size: int = 32_000
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    kv_heads: int = 4
    ffn_size: int = 2048
    context_length: int = 2048
    tied_embeddings: bool = True
    dtype: str = "bfloat16"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads if self.heads else 0

    def with_values(self, values: dict[str, Any]) -> Design:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(", ".join(unknown))
        return replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Parameters:
    embedding: int
    attention: int  # all layers
    mlp: int  # all layers
    norms: int
    output: int  # the LM head (0 when tied to the embedding)

    @property
    def total(self) -> int:
        return self.embedding + self.attention + self.mlp + self.norms + self.output


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def parameters(d: Design) -> Parameters:
    """The exact count transformers' model of this family has (tied weights counted once)."""
    family = FAMILIES[d.family]
    hd, h = d.head_dim, d.hidden_size
    q, kv = d.heads * hd, d.kv_heads * hd
    attention = h * q + 2 * h * kv + q * h
    if family.qkv_bias:
        attention += q + 2 * kv
    if family.qk_norm:
        attention += 2 * hd
    return Parameters(
        embedding=d.vocab_size * h,
        attention=d.layers * attention,
        mlp=d.layers * 3 * h * d.ffn_size,
        norms=d.layers * 2 * h + h,
        output=0 if d.tied_embeddings else d.vocab_size * h,
    )


def weight_bytes(d: Design) -> int:
    return parameters(d).total * DTYPE_BYTES[d.dtype]


def problems(d: Design) -> list[Problem]:
    """What is wrong with the shape, each on the field it concerns."""
    found: list[Problem] = []

    def within(field: str, value: int, bounds: tuple[int, int]) -> bool:
        lo, hi = bounds
        if lo <= value <= hi:
            return True
        found.append(Problem(field, f"must be between {lo:,} and {hi:,}"))
        return False

    if d.family not in FAMILIES:
        found.append(Problem("family", f"one of {', '.join(FAMILIES)}"))
    if d.dtype not in DTYPE_BYTES:
        found.append(Problem("dtype", f"one of {', '.join(DTYPE_BYTES)}"))
    within("vocab_size", d.vocab_size, VOCAB)
    hidden_ok = within("hidden_size", d.hidden_size, HIDDEN)
    within("layers", d.layers, LAYERS)
    heads_ok = within("heads", d.heads, HEADS)
    kv_ok = within("kv_heads", d.kv_heads, HEADS)
    within("ffn_size", d.ffn_size, FFN)
    within("context_length", d.context_length, CONTEXT)
    if hidden_ok and heads_ok:
        if d.hidden_size % d.heads:
            found.append(Problem("heads", f"must divide the hidden size {d.hidden_size:,}"))
        elif d.head_dim % 2:
            found.append(
                Problem(
                    "heads", f"each head gets {d.head_dim} dimensions; rotary embeddings need an even number"
                )
            )
    if heads_ok and kv_ok and d.heads % d.kv_heads:
        found.append(Problem("kv_heads", f"must divide the {d.heads} attention heads"))
    if not found:
        total = parameters(d).total
        lo, hi = PARAMETERS
        if not lo <= total <= hi:
            found.append(Problem("layers", f"{total:,} parameters: keep between {lo:,} and {hi:,}"))
    return found


def hf_config(d: Design, *, bos: int | None, eos: list[int], pad: int | None) -> dict[str, Any]:
    """config.json of the exported model."""
    family = FAMILIES[d.family]
    config: dict[str, Any] = {
        "architectures": [family.architecture],
        "model_type": family.model_type,
        "vocab_size": d.vocab_size,
        "hidden_size": d.hidden_size,
        "intermediate_size": d.ffn_size,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads,
        "head_dim": d.head_dim,
        "max_position_embeddings": d.context_length,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": family.rope_theta,
        "initializer_range": 0.02,
        "tie_word_embeddings": d.tied_embeddings,
        "dtype": d.dtype,
        "bos_token_id": bos,
        "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "pad_token_id": pad,
    }
    if family.name == "mistral":
        config["sliding_window"] = None
    if family.name == "qwen2":
        config["use_sliding_window"] = False
    return config
