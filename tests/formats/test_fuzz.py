"""The GGUF, safetensors, ONNX, CTranslate2 and pickle-name readers on damaged input: a typed error or a result, nothing else,
and quickly (bench/fuzz.py runs the same with 100,000 cases each)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import cuts, edits, mutate, sample, survives
from modelyard.formats.ctranslate2 import read_model_bin
from modelyard.formats.gguf import read_gguf
from modelyard.formats.onnx import read_graph
from modelyard.formats.pickled import tensor_names
from modelyard.formats.safetensors import read_safetensors

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(edits=edits, cut=cuts)
def test_gguf_reader_survives_damage(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    path = tmp_path / "f.gguf"
    # aim most edits at the header, where the structure is
    header_edits = [(pos % 4096, v) for pos, v in edits]
    path.write_bytes(mutate(sample("gguf"), header_edits, cut))
    survives(read_gguf, path)


@FUZZ
@given(edits=edits, cut=cuts)
def test_safetensors_reader_survives_damage(
    tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    path = tmp_path / "f.safetensors"
    path.write_bytes(mutate(sample("safetensors"), edits, cut))
    survives(read_safetensors, path)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    for name, reader in (("r.gguf", read_gguf), ("r.safetensors", read_safetensors)):
        path = tmp_path / name
        path.write_bytes(b"GGUF" + data if name.endswith("gguf") else data)
        survives(reader, path)


@FUZZ
@given(edits=edits, cut=cuts)
def test_onnx_ctranslate2_and_pickle_readers_survive_damage(
    tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    for name, kind, reader in (
        ("f.onnx", "onnx", read_graph),
        ("model.bin", "ct2", read_model_bin),
        ("f.pth", "pth", tensor_names),  # None for what it cannot read
    ):
        path = tmp_path / name
        path.write_bytes(mutate(sample(kind), edits, cut))
        survives(reader, path)


def test_the_samples_read_as_they_were_written(tmp_path: Path) -> None:
    for name, kind in (("f.onnx", "onnx"), ("model.bin", "ct2"), ("f.pth", "pth")):
        (tmp_path / name).write_bytes(sample(kind))
    graph = read_graph(tmp_path / "f.onnx")
    assert (graph.inputs, [o[0] for o in graph.outputs], graph.weights) == ([("x", [1, 8])], ["y"], 8 * 4 + 4)
    assert read_model_bin(tmp_path / "model.bin") == ("WhisperSpec", 4 * 2 * 3 + 10 * 4, "F32")
    assert {"model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"} <= (
        tensor_names(tmp_path / "f.pth") or set()
    )
