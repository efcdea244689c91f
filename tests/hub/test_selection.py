"""A repo's files grouped by quantization, and what a pull takes."""

from __future__ import annotations

import pytest

from modelyard.errors import RepoNotFound
from modelyard.hub.refs import Source
from modelyard.hub.remote import RemoteFile, Snapshot
from modelyard.hub.selection import choose, groups


def snap(*files: tuple[str, int]) -> Snapshot:
    return Snapshot(Source.HF, "org/repo", "c0ffee", [RemoteFile(p, n, f"http://hub/{p}") for p, n in files])


GGUF = snap(
    ("README.md", 10),
    ("model-Q8_0.gguf", 800),
    ("Q4_K_M/model-Q4_K_M-00001-of-00002.gguf", 250),
    ("Q4_K_M/model-Q4_K_M-00002-of-00002.gguf", 200),
    ("model-IQ2_XS.gguf", 300),
    ("mmproj-model-f16.gguf", 60),
    ("mmproj-model-Q8_0.gguf", 40),
)


def paths(files: list[RemoteFile]) -> list[str]:
    return sorted(f.path for f in files)


def test_groups_by_quantization_with_shards_together() -> None:
    found = {g.name: g for g in groups(GGUF)}
    assert list(found) == ["IQ2_XS", "Q4_K_M", "Q8_0", "mmproj", "other"]  # smallest first
    assert found["Q4_K_M"].size == 450
    assert found["Q4_K_M"].shards == 2
    assert paths(found["mmproj"].files) == ["mmproj-model-Q8_0.gguf", "mmproj-model-f16.gguf"]


def test_a_quantization_takes_its_shards_and_the_matching_projector() -> None:
    assert paths(choose(GGUF, quantization="q8_0")) == ["mmproj-model-Q8_0.gguf", "model-Q8_0.gguf"]
    assert paths(choose(GGUF, quantization="Q4_K_M")) == [
        "Q4_K_M/model-Q4_K_M-00001-of-00002.gguf",
        "Q4_K_M/model-Q4_K_M-00002-of-00002.gguf",
        "mmproj-model-f16.gguf",  # no Q4_K_M projector: F16
    ]


def test_without_a_quantization_q4_k_m_is_the_default() -> None:
    assert "mmproj-model-f16.gguf" in paths(choose(GGUF))
    assert len(choose(GGUF)) == 3


def test_several_quantizations_without_q4_k_m_ask_for_one() -> None:
    two = snap(("m-Q8_0.gguf", 8), ("m-Q5_K_S.gguf", 5))
    with pytest.raises(RepoNotFound, match="several quantizations: Q5_K_S, Q8_0"):
        choose(two)
    assert paths(choose(snap(("only-Q6_K.gguf", 6)))) == ["only-Q6_K.gguf"]


def test_a_missing_quantization_names_those_there_are() -> None:
    with pytest.raises(RepoNotFound) as e:
        choose(GGUF, quantization="Q2_K")
    assert e.value.hint is not None
    assert "IQ2_XS, Q4_K_M, Q8_0" in e.value.hint


def test_files_patterns_everything() -> None:
    assert paths(choose(GGUF, file="README.md")) == ["README.md"]
    assert paths(choose(GGUF, patterns=["*.md", "mmproj-*"])) == [
        "README.md",
        "mmproj-model-Q8_0.gguf",
        "mmproj-model-f16.gguf",
    ]
    assert len(choose(GGUF, everything=True)) == 7
    with pytest.raises(RepoNotFound):
        choose(GGUF, file="nope.gguf")
    with pytest.raises(RepoNotFound):
        choose(GGUF, patterns=["*.onnx"])


def test_a_safetensors_repo_leaves_other_frameworks_out() -> None:
    hf = snap(
        (".gitattributes", 1),
        ("config.json", 1),
        ("model.safetensors", 100),
        ("pytorch_model.bin", 100),
        ("tf_model.h5", 100),
        ("onnx/model.onnx", 100),
        ("tokenizer.json", 1),
    )
    assert paths(choose(hf)) == ["config.json", "model.safetensors", "tokenizer.json"]
    with pytest.raises(RepoNotFound, match="no GGUF files"):
        choose(hf, quantization="Q4_K_M")
