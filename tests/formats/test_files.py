"""Paths as users type them: what no file system could hold is a typed error that says why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelyard.errors import InvalidInput
from modelyard.formats.files import MAX_NAME, usable_path


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("/tmp/a\0b", "NUL"),
        (os.fsdecode(b"/tmp/\xff.gguf"), "not valid Unicode"),  # a name listed from a non-UTF-8 disk
        ("~nosuchuser/m.gguf", "no user '~nosuchuser'"),
        ("/tmp/" + "m" * (MAX_NAME + 1), "bytes"),
    ],
)
def test_paths_no_file_system_holds_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        usable_path(text)


def test_a_usable_path_is_expanded() -> None:
    assert usable_path("~/models/m.gguf") == Path.home() / "models" / "m.gguf"
