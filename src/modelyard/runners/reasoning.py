"""Models that think: the text between ``<think>`` and ``</think>`` is the answer's
``reasoning_content`` (OpenAI style, as llama-server and vLLM give it), never its ``content``. A
template that opens the thought itself (its generation prompt ends with ``<think>``) starts the
answer inside it. A budget ends a thought after so many tokens by writing the end tag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

START, END = "<think>", "</think>"


def thinks(template: str | None) -> bool:
    """Whether a chat template has thinking blocks."""
    return bool(template) and END in (template or "")


def starts_inside(prompt: str) -> bool:
    """Whether the prompt leaves the model inside an open thought."""
    return prompt.rstrip().endswith(START)


def split(text: str, inside: bool) -> tuple[str | None, str]:
    """(the reasoning, the content) of a finished answer; None: it did not think."""
    if not inside:
        head = text.lstrip()
        if not head.startswith(START):
            return None, text
        text = head[len(START) :]
    end = text.find(END)
    if end < 0:
        return text.strip(), ""  # cut short while thinking
    return text[:end].strip(), text[end + len(END) :].lstrip()


@dataclass
class Splitter:
    """A stream's text as (reasoning, content) pieces while it comes: the thought until its end
    tag, the rest after; what may begin a tag waits until it is known."""

    inside: bool
    text: str = ""
    sent: int = 0
    ended: int | None = None  # where the content begins, once the thought ended
    _opened: bool = False

    def feed(self, piece: str) -> tuple[str, str]:
        self.text += piece
        if not self.inside and not self._opened:
            head = self.text.lstrip()
            if head.startswith(START):
                self.inside, self._opened = True, True
                self.sent = len(self.text) - len(head) + len(START)
            elif len(head) < len(START) and START.startswith(head):
                return "", ""  # "<thi" may be a thought beginning
            else:
                self._opened = True  # no thought: all content
        if self.inside and self.ended is None:
            end = self.text.find(END, self.sent)
            if end < 0:
                safe = len(self.text) - _partial(self.text, END)
                thought = self.text[self.sent : max(safe, self.sent)]
                self.sent = max(safe, self.sent)
                return thought, ""
            thought = self.text[self.sent : end]
            self.ended = self.sent = end + len(END)
            return thought, self._content()
        return "", self._content()

    def _content(self) -> str:
        out = self.text[self.sent :]
        if self.ended == self.sent:
            out = out.lstrip()  # the blank line after the end tag
            if not out:
                return ""
        self.sent = len(self.text)
        return out

    def finish(self) -> tuple[str, str]:
        """What was held back at the end: a partial tag is text after all."""
        rest = self.text[self.sent :]
        self.sent = len(self.text)
        if self.inside and self.ended is None:
            return rest, ""
        return "", rest


def _partial(text: str, tag: str) -> int:
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


def budget_processor(tokenizer: Any, budget: int, prompt_len: int, inside: bool) -> Any:
    """A transformers logits processor that, once a thought has taken ``budget`` tokens without
    ending, writes its end tag (each of its tokens in turn)."""
    import torch
    from transformers import LogitsProcessor

    forced = tokenizer.encode("\n" + END + "\n\n", add_special_tokens=False)

    class Budget(LogitsProcessor):
        def __init__(self) -> None:
            self.step: int | None = None  # the end tag's token to write next

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            generated = input_ids[0, prompt_len:]
            if self.step is None:
                if len(generated) < budget:
                    return scores
                text = tokenizer.decode(generated, skip_special_tokens=True)
                if END in text or not (inside or text.lstrip().startswith(START)):
                    return scores  # it ended the thought itself, or never thought
                self.step = 0
            if self.step >= len(forced):
                return scores
            token = forced[self.step]
            self.step += 1
            out = torch.full_like(scores, float("-inf"))
            out[:, token] = 0
            return out

    return Budget()
