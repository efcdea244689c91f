"""Tokenizers a new model can take: a library model's (pretrained), or one trained from a
corpus. Read here without transformers (the server may not have it): tokenizer.json's model
type, pre-tokenizer and size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.catalog.records import Model
from modelyard.errors import ModelyardError, PathNotFound
from modelyard.formats.files import read_head, usable_path

TRAIN_VOCAB = (8_000, 50_000)
KINDS = ("sentencepiece", "bpe")
# what llama.cpp can tokenize with, in the GGUF it gets
GGUF_KINDS = ("sentencepiece", "bpe")
SAMPLE = 64 * 1024


@dataclass(frozen=True)
class Pretrained:
    folder: Path
    size: int  # tokens, added ones included
    kind: str  # sentencepiece, bpe (byte-level), wordpiece, unigram, or the model type
    chat_template: bool


_cache: dict[tuple[str, int, int], Pretrained | None] = {}


def read_tokenizer(folder: Path) -> Pretrained | None:
    """The tokenizer a model folder holds (None: none that transformers would load)."""
    spec = folder / "tokenizer.json"
    config = folder / "tokenizer_config.json"
    try:
        st = spec.stat()
    except OSError:
        if (folder / "tokenizer.model").is_file():
            return Pretrained(folder, _configured_vocab(folder), "sentencepiece", _has_template(config))
        return None
    key = (str(spec), st.st_mtime_ns, st.st_size)
    if key not in _cache:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = _parse(folder, spec, config)
    return _cache[key]


def _parse(folder: Path, spec: Path, config: Path) -> Pretrained | None:
    try:
        data = json.loads(spec.read_bytes())
    except (OSError, ValueError):
        return None
    model = data.get("model") or {}
    vocab = model.get("vocab") or {}
    ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
    ids.update(t.get("id") for t in data.get("added_tokens") or [] if isinstance(t, dict))
    kind = str(model.get("type") or "unknown").lower()
    if kind == "bpe":
        if _mentions(data.get("pre_tokenizer"), "ByteLevel"):
            kind = "bpe"
        elif model.get("byte_fallback") or (folder / "tokenizer.model").is_file():
            kind = "sentencepiece"
        else:
            kind = "bpe-other"
    return Pretrained(folder, len(ids), kind, _has_template(config))


def _mentions(node: Any, type_name: str) -> bool:
    if isinstance(node, dict):
        return node.get("type") == type_name or any(_mentions(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, type_name) for v in node)
    return False


def _has_template(config: Path) -> bool:
    try:
        return bool(json.loads(config.read_bytes()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return (config.parent / "chat_template.jinja").is_file()


def _configured_vocab(folder: Path) -> int:
    try:
        return int(json.loads((folder / "config.json").read_bytes()).get("vocab_size") or 0)
    except (OSError, ValueError, TypeError):
        return 0


def tokenizer_of(model: Model) -> Pretrained | None:
    path = Path(model.path)
    return read_tokenizer(path) if path.is_dir() else None


def default_model(models: list[Model]) -> Model | None:
    """A sensible pretrained tokenizer: a chat model's with a chat template, else any chat
    model's, else any model's that fits a vocabulary modelyard can create."""
    ranked: list[tuple[int, str, Model]] = []
    for m in models:
        tok = tokenizer_of(m)
        if tok is None or not tok.size:
            continue
        rank = (0 if m.category == "chat" else 2) + (0 if tok.chat_template else 1)
        ranked.append((rank, m.name, m))
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


def corpus_problem(path: str) -> str | None:
    """Why a corpus file cannot be trained on (None: it can)."""
    try:
        head = read_head(usable_path(path), SAMPLE)
    except PathNotFound:
        return "no such file"
    except ModelyardError as e:
        return e.message
    if not head.strip():
        return "is empty"
    if b"\0" in head:
        return "is not text (it holds NUL bytes)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the sample's end
            return "is not UTF-8 text"
    return None
