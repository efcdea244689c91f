"""A corpus the tokenizer tests train on: English and Chinese lines, one sentence a line."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

WORDS = [
    "the",
    "model",
    "reads",
    "every",
    "line",
    "of",
    "text",
    "and",
    "learns",
    "which",
    "pieces",
    "come",
    "back",
    "often",
    "enough",
    "to",
    "keep",
    "small",
    "experiments",
    "train",
    "quickly",
    "on",
    "two",
    "cores",
    "while",
    "larger",
    "ones",
    "wait",
    "for",
    "a",
    "better",
    "machine",
]
CHINESE = "今天天气很好我们一起学习语言模型的分词方法并且导出一个新的模型用于实验和预训练"


def write_corpus(path: Path, lines: int = 3000, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(lines):
            if i % 3 == 2:
                start = rng.randrange(len(CHINESE) - 8)
                f.write(CHINESE[start : start + rng.randint(6, 20)] + "。\n")
            else:
                f.write(
                    " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14)))
                    + f" {rng.randint(0, 999)}.\n"
                )
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
