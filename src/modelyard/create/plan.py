"""A whole creation request (Plan: design, tokenizer, output, GGUF), its checks against the
library, the file system and the memory free now, and its preview (parameters and memory)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.access.folders import Folders
from modelyard.catalog.records import Model
from modelyard.create import vocab
from modelyard.create.design import DTYPE_BYTES, Design, Parameters, Problem, parameters, problems
from modelyard.errors import ModelNotFound, ModelyardError
from modelyard.estimate.hf import HFConfig, estimate_weights
from modelyard.estimate.llama import Estimate
from modelyard.formats.files import usable_path
from modelyard.library import Library
from modelyard.library.naming import check_name, valid_name

GGUF_TYPES = ("F16", "Q8_0")


@dataclass(frozen=True)
class TokenizerPlan:
    model: str | None = None  # a library model's tokenizer (None with no corpus: the default)
    corpus: str | None = None  # train one from this .txt file instead
    kind: str = "sentencepiece"  # what to train: sentencepiece or bpe
    vocab_size: int = 16_000  # what to train


@dataclass(frozen=True)
class Plan:
    design: Design
    out: str  # the model's folder, created by the export
    name: str | None = None  # the library name (default: the folder's name)
    tokenizer: TokenizerPlan = field(default_factory=TokenizerPlan)
    gguf: str | None = None  # also write a GGUF of this type
    seed: int = 0
    n_ctx: int | None = None  # the context the memory preview is for (default: the design's)

    @property
    def context(self) -> int:
        return self.n_ctx or self.design.context_length


@dataclass(frozen=True)
class Memory:
    """What is free now, where the model would run (a GPU when there is one)."""

    free: int
    device: str  # cpu or cuda


@dataclass
class Preview:
    parameters: Parameters
    estimate: Estimate
    memory: Memory
    problems: list[Problem]
    tokenizer: str | None  # what the export will use, in words
    tokenizer_model: str | None  # the library model whose tokenizer it is

    @property
    def needed(self) -> int:
        return self.estimate.vram[0].total if self.estimate.vram else self.estimate.ram.total


def estimate(design: Design, n_ctx: int, device: str) -> Estimate:
    """modelyard's transformers estimate: weights at the design's dtype, KV cache and
    activations for ``n_ctx``."""
    facts: dict[str, object] = {
        "block_count": design.layers,
        "embedding_length": design.hidden_size,
        "head_count": design.heads,
        "head_count_kv": design.kv_heads,
        "key_length": design.head_dim,
    }
    weights = parameters(design).total * DTYPE_BYTES[design.dtype]
    cfg = HFConfig(n_ctx=n_ctx, precision=design.dtype, device=device)
    return estimate_weights(weights, design.dtype, facts, cfg)


def preview(plan: Plan, library: Library, folders: Folders, memory: Memory) -> Preview:
    found = problems(plan.design)
    shape_ok = not found
    if plan.n_ctx is not None and not 1 <= plan.n_ctx <= 1_048_576:
        found.append(Problem("n_ctx", "must be between 1 and 1,048,576"))
    found += _output_problems(plan, library, folders)
    described, model = _tokenizer(plan, library, folders, found)
    if plan.gguf is not None and plan.gguf not in GGUF_TYPES:
        found.append(Problem("gguf", f"one of {', '.join(GGUF_TYPES)}"))
    if plan.gguf == "Q8_0" and (plan.design.hidden_size % 32 or plan.design.ffn_size % 32):
        found.append(
            Problem("gguf", "Q8_0 needs a hidden size and FFN size that are multiples of 32; use F16")
        )
    if any(p.field in ("family", "dtype", "heads", "kv_heads", "hidden_size") for p in found):
        design = Design()  # numbers from a shape that can be computed; the problems say why
    else:
        design = plan.design
    result = estimate(design, plan.context if plan.context > 0 else 1, memory.device)
    shown = Preview(parameters(design), result, memory, found, described, model)
    if shape_ok and shown.needed > memory.free:  # whatever else is wrong: the size is known
        where = "GPU memory" if memory.device == "cuda" else "memory"
        found.append(
            Problem(
                "n_ctx" if plan.n_ctx else "layers",
                f"needs {shown.needed / 2**30:.1f} GiB and {where} has {memory.free / 2**30:.1f} GiB free: "
                "make it smaller or free memory",
            )
        )
    return shown


def _output_problems(plan: Plan, library: Library, folders: Folders) -> list[Problem]:
    if not plan.out.strip():
        return [Problem("out", "the output folder is required")]
    try:
        out = usable_path(plan.out)
        folders.check(out)
    except ModelyardError as e:
        return [Problem("out", e.message)]
    if not out.is_absolute():
        return [Problem("out", "give an absolute path")]
    found = []
    if out.exists():
        if not out.is_dir():
            found.append(Problem("out", "is a file: name a new folder"))
        elif any(out.iterdir()):
            found.append(Problem("out", "is not empty: name a new folder"))
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        found.append(Problem("out", f"{parent} is a file, not a folder"))
    elif parent is None or not os.access(parent, os.W_OK | os.X_OK):
        found.append(Problem("out", f"{parent or out} is not writable"))
    name = plan.name or valid_name(out.name)
    try:
        check_name(name)
    except ModelyardError as e:
        return [*found, Problem("name", e.message)]
    for taken in [name, *([gguf_record(name)] if plan.gguf else [])]:
        try:
            library.get(taken)
            found.append(Problem("name", f"{taken!r} is already in the library: choose another name"))
        except ModelNotFound:
            pass
    return found


def gguf_record(name: str) -> str:
    """The library name of the GGUF written beside model ``name``."""
    return f"{name}-gguf"


def _tokenizer(
    plan: Plan, library: Library, folders: Folders, found: list[Problem]
) -> tuple[str | None, str | None]:
    """Adds the tokenizer's problems; returns what it is, in words, and its model."""
    tok = plan.tokenizer
    if tok.corpus is not None:
        lo, hi = vocab.TRAIN_VOCAB
        if tok.kind not in vocab.KINDS:
            found.append(Problem("tokenizer.kind", f"one of {', '.join(vocab.KINDS)}"))
        if not lo <= tok.vocab_size <= hi:
            found.append(
                Problem("tokenizer.vocab_size", f"must be between {lo:,} and {hi:,} (16,000-32,000 is best)")
            )
        elif tok.vocab_size > plan.design.vocab_size:
            found.append(Problem("vocab_size", f"must be at least the tokenizer's {tok.vocab_size:,} tokens"))
        if not tok.corpus.strip():
            why: str | None = "the corpus is required: a .txt file to train the tokenizer on"
        else:
            try:
                folders.check(tok.corpus)
                why = vocab.corpus_problem(tok.corpus)
            except ModelyardError as e:
                why = e.message
        if why is not None:
            found.append(Problem("tokenizer.corpus", why))
        return f"{tok.kind} trained on {Path(tok.corpus).name}, {tok.vocab_size:,} tokens", None
    model: Model | None
    if tok.model is not None:
        try:
            model = library.get(tok.model)
        except ModelNotFound:
            found.append(Problem("tokenizer.model", f"no model named {tok.model!r} in the library"))
            return None, None
    else:
        model = vocab.default_model(library.models())
        if model is None:
            found.append(
                Problem("tokenizer", "no model in the library has a tokenizer: train one from a corpus")
            )
            return None, None
    pretrained = vocab.tokenizer_of(model)
    if pretrained is None:
        found.append(Problem("tokenizer.model", f"{model.name!r} has no tokenizer files"))
        return None, model.name
    if pretrained.size > plan.design.vocab_size:
        found.append(
            Problem(
                "vocab_size",
                f"must be at least the tokenizer's {pretrained.size:,} tokens (from {model.name!r})",
            )
        )
    if plan.gguf is not None and pretrained.kind not in vocab.GGUF_KINDS:
        found.append(
            Problem(
                "gguf",
                f"{model.name!r} has a {pretrained.kind} tokenizer; a GGUF takes BPE or SentencePiece ones",
            )
        )
    return f"{model.name}'s ({pretrained.kind}, {pretrained.size:,} tokens)", model.name
