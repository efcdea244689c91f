"""Draft models for speculative decoding (llama.cpp) and assisted generation (transformers): the
option names another model, saved as its file once its vocabulary is checked against the model's.
"""

from __future__ import annotations

from typing import Any

from modelyard.backends.base import Find
from modelyard.catalog.records import Model
from modelyard.errors import InvalidSettings, ModelyardError

VOCAB_SLACK = 128  # tokens a draft's vocabulary may differ by (llama.cpp's own allowance)


def with_draft(model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
    """``options`` with their ``draft_model`` (a library model's name, or a file) as its file."""
    wanted = options.get("draft_model")
    if not wanted:
        return options
    return {**options, "draft_model": draft_file(model, str(wanted), find)}


def draft_file(model: Model, wanted: str, find: Find) -> str:
    """The file of the draft model ``wanted`` for ``model``; InvalidSettings unless both have one
    format and one vocabulary."""
    try:
        found = find(wanted)
    except ModelyardError as e:
        raise InvalidSettings(
            f"draft_model {wanted!r} is neither a library model nor a model file: {e.message}",
            hint="`modelyard ls` lists the models",
        ) from None
    if found.format != model.format:
        raise InvalidSettings(
            f"the draft model is {found.format}; {model.name!r} is {model.format}: they must match"
        )
    mine = (model.facts.get("tokenizer"), model.facts.get("vocab_size"))
    theirs = (found.facts.get("tokenizer"), found.facts.get("vocab_size"))
    sizes = (mine[1], theirs[1])
    if (
        not all(isinstance(v, int) for v in sizes)
        or mine[0] != theirs[0]
        or abs(int(mine[1] or 0) - int(theirs[1] or 0)) > VOCAB_SLACK
    ):
        raise InvalidSettings(
            f"the draft model's vocabulary ({theirs[0]}, {theirs[1]} tokens) is not {model.name!r}'s "
            f"({mine[0]}, {mine[1]} tokens)",
            hint="a draft must come from the same family: a smaller model with the same tokenizer",
        )
    return found.path
