"""Structured output on the runner: an answer constrained token by token to JSON, or to a JSON
schema, with xgrammar (chosen by measurement, bench/constrained.py: the fastest to compile a
schema and to mask a token of the three on the registry). The grammar compiler is built on the
first constrained request (it reads the whole vocabulary once); compiled schemas are cached."""

from __future__ import annotations

import json
import threading
from typing import Any

from modelyard.errors import InvalidRequest, Unsupported

ANY_OBJECT = {"type": "object"}


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema an OpenAI ``response_format`` asks for; None for plain text."""
    if not response_format or response_format.get("type", "text") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format json_schema needs {name, schema}", param="response_format")
        return schema
    raise InvalidRequest(
        f"response_format type {kind!r} is not one of text, json_object, json_schema", param="response_format"
    )


class Grammars:
    """The compiler of one model's grammars (its tokenizer, the size of its logits, its stop
    tokens)."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int]) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._stop_ids = stop_ids
        self._compiler: Any = None
        self._control: Any = None  # the tokens with a control character: never in compact JSON
        self._lock = threading.Lock()

    def compile(self, schema: dict[str, Any]) -> Any:
        """The compiled grammar of ``schema``; InvalidRequest for a schema it cannot take."""
        try:
            import xgrammar as xgr
        except ImportError:
            raise Unsupported(
                "structured output needs xgrammar in this engine's environment",
                hint="`pip install --no-deps xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2` there, "
                "or `modelyard backends install transformers`",
            ) from None

        with self._lock:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self._tokenizer, vocab_size=self._vocab_size, stop_token_ids=self._stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info)
                self._control = _control_tokens(info, self._vocab_size)
        try:
            # compact JSON (no runs of whitespace a small model could loop in), no properties
            # beyond the schema's: what strict structured output means
            return self._compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=True
            )
        except (RuntimeError, ValueError) as e:
            raise InvalidRequest(f"the JSON schema cannot be used: {e}", param="response_format") from None

    def processor(self, compiled: Any) -> Any:
        """A transformers logits processor that allows only the tokens the grammar takes next."""
        import xgrammar as xgr
        from transformers import LogitsProcessor

        matcher = xgr.GrammarMatcher(compiled)
        bitmask = xgr.allocate_token_bitmask(1, self._vocab_size)
        control = self._control

        class Constrained(LogitsProcessor):
            def __init__(self) -> None:
                self.prompt_len: int | None = None

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if self.prompt_len is None:
                    self.prompt_len = int(input_ids.shape[1])
                elif not matcher.is_terminated():
                    matcher.accept_token(int(input_ids[0, -1]))
                if matcher.is_terminated():
                    return scores  # complete: the stop token ends it (generate stops there)
                matcher.fill_next_token_bitmask(bitmask)
                xgr.apply_token_bitmask_inplace(scores, bitmask.to(scores.device))
                # xgrammar 0.2.9 lets a string with maxLength hold raw control characters,
                # which JSON forbids; compact JSON never needs one (escapes are "\\n")
                scores[:, control.to(scores.device)] = float("-inf")
                return scores

        return Constrained()


def _control_tokens(info: Any, vocab_size: int) -> Any:
    """A mask of the tokens whose text holds a control character (bytes 0-31), the model's
    stop tokens aside."""
    import torch

    mask = torch.zeros(vocab_size, dtype=torch.bool)
    stops = set(info.stop_token_ids)
    for i, piece in enumerate(info.decoded_vocab[:vocab_size]):
        if i not in stops and any(b < 0x20 for b in piece):
            mask[i] = True
    return mask
