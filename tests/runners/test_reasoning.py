"""Thoughts read out of a thinking model's text, whole and while it streams."""

from __future__ import annotations

import pytest

from modelyard.runners.reasoning import Splitter, split, starts_inside, thinks


def test_which_templates_think() -> None:
    assert thinks("...<think>\n{{ m.reasoning_content }}\n</think>...")
    assert not thinks("<|im_start|>assistant\n")
    assert starts_inside("<|im_start|>assistant\n<think>\n")
    assert not starts_inside("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize(
    ("text", "inside", "expected"),
    [
        ("sky is blue\n</think>\n\nYes.", True, ("sky is blue", "Yes.")),
        ("<think>hmm</think>Yes.", False, ("hmm", "Yes.")),
        ("Yes.", False, (None, "Yes.")),
        ("still thinking", True, ("still thinking", "")),
    ],
)
def test_a_finished_answer_splits(text: str, inside: bool, expected: tuple[str | None, str]) -> None:
    assert split(text, inside) == expected


def test_a_stream_splits_as_it_comes() -> None:
    s = Splitter(inside=True)
    pieces = [s.feed(p) for p in ["sky ", "is blue\n</th", "ink>\n\nYe", "s."]]
    assert pieces == [("sky ", ""), ("is blue\n", ""), ("", "Ye"), ("", "s.")]
    assert s.finish() == ("", "")
    opened = Splitter(inside=False)
    assert opened.feed("<thi") == ("", "")  # may open a thought: held
    assert opened.feed("nk>hm") == ("hm", "")
    assert opened.feed("m</think>ok") == ("m", "ok")
    plain = Splitter(inside=False)
    assert plain.feed("<b>bold") == ("", "<b>bold")
    cut = Splitter(inside=True)
    assert cut.feed("thinking </") == ("thinking ", "")
    assert cut.finish() == ("</", "")  # ended inside the thought: the rest is thought


def test_template_variables_cannot_be_apply_chat_templates_own() -> None:
    from pydantic import ValidationError

    from modelyard.runners.requests import ChatBody

    messages = [{"role": "user", "content": "hi"}]
    assert ChatBody(messages=messages, chat_template_kwargs={"enable_thinking": False}).chat_template_kwargs
    with pytest.raises(ValidationError, match="tokenize cannot be set"):
        ChatBody(messages=messages, chat_template_kwargs={"tokenize": True})
