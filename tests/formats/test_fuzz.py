"""The GGUF and safetensors readers on damaged input: a typed error or a result, nothing else,
and quickly (bench/fuzz.py runs the same with 100,000 cases each)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import cuts, edits, mutate, sample, survives
from modelyard.formats.gguf import read_gguf
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
