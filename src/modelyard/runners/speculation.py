"""Assisted generation on the runner (transformers' speculative decoding): a draft model, or
prompt lookup, proposes tokens the model checks in one pass. transformers does not report how
many drafts were accepted; this counts them: the tokens proposed (each candidate generator's
``get_candidates``), and the model's passes (each pass keeps its accepted drafts plus one token of
its own, so accepted = tokens generated - passes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

_current = threading.local()  # the Drafts of the generation running on this thread
_installed = threading.Lock()
_patched = False


@dataclass
class Drafts:
    proposed: int = 0
    passes: int = 0
    hooks: list[Any] = field(default_factory=list)

    def accepted(self, generated: int) -> int:
        """Drafted tokens the model kept, of ``generated`` tokens in all."""
        return max(0, min(self.proposed, generated - self.passes))


def _counting(get_candidates: Any) -> Any:
    def counted(self: Any, input_ids: Any, **kwargs: Any) -> Any:
        candidates, logits = get_candidates(self, input_ids, **kwargs)
        drafts: Drafts | None = getattr(_current, "drafts", None)
        if drafts is not None:
            drafts.proposed += int(candidates.shape[-1] - input_ids.shape[-1])
        return candidates, logits

    return counted


def _install() -> None:
    """Count the candidates of the generators modelyard uses (once per process)."""
    global _patched
    with _installed:
        if _patched:
            return
        from transformers.generation import candidate_generator as cg

        for kind in (cg.AssistedCandidateGenerator, cg.PromptLookupCandidateGenerator):
            kind.get_candidates = _counting(kind.get_candidates)  # type: ignore[method-assign]
        _patched = True


class Counting:
    """Counts one generation's drafts and the model's passes, on the thread that generates."""

    def __init__(self, model: Any) -> None:
        _install()
        self.model = model
        self.drafts = Drafts()

    def __enter__(self) -> Drafts:
        _current.drafts = self.drafts

        def passed(_module: Any, _args: Any, _out: Any) -> None:
            self.drafts.passes += 1

        self.drafts.hooks.append(self.model.register_forward_hook(passed))
        return self.drafts

    def __exit__(self, *exc: object) -> None:
        _current.drafts = None
        for hook in self.drafts.hooks:
            hook.remove()


def generate_kwargs(assistant: Any, prompt_lookup: int | None, draft_max: int | None) -> dict[str, Any]:
    """What generate() takes for assisted generation with these settings (empty: none)."""
    if assistant is not None:
        kwargs: dict[str, Any] = {"assistant_model": assistant}
        if draft_max is not None:
            kwargs["num_assistant_tokens"] = draft_max
            kwargs["num_assistant_tokens_schedule"] = "constant"
        return kwargs
    if prompt_lookup is not None:
        return {"prompt_lookup_num_tokens": prompt_lookup}
    return {}
