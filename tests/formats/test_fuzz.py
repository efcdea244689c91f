"""The GGUF and safetensors readers on damaged input: a typed error or a result, nothing else,
and quickly."""

from __future__ import annotations

import contextlib
import functools
import resource
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import builders as b
from modelyard.errors import ModelFileError
from modelyard.formats.gguf import read_gguf
from modelyard.formats.safetensors import read_safetensors

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def sample(kind: str) -> bytes:
    """A valid file to damage (kept out of the test's arguments, so reports stay short)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if kind == "gguf":
            (path,) = b.write_llama_gguf(root / "tiny.gguf", n_layer=1)
        else:
            path = b.write_safetensors(root / "t.safetensors", {"a.weight": (4, 4), "b.bias": (4,)})
        return path.read_bytes()


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12)
cuts = st.one_of(st.none(), st.integers(0, 1 << 20))


def check(reader: object, path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with contextlib.suppress(ModelFileError):
        reader(path)  # type: ignore[operator]
    assert time.perf_counter() - start < 2.0
    # never allocates unbounded memory (ru_maxrss is in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024


@FUZZ
@given(edits=edits, cut=cuts)
def test_gguf_reader_survives_damage(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    path = tmp_path / "f.gguf"
    data = sample("gguf")
    # aim most edits at the header, where the structure is
    header_edits = [(pos % 4096, v) for pos, v in edits]
    path.write_bytes(mutate(data, header_edits, cut))
    check(read_gguf, path)


@FUZZ
@given(edits=edits, cut=cuts)
def test_safetensors_reader_survives_damage(
    tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    path = tmp_path / "f.safetensors"
    path.write_bytes(mutate(sample("safetensors"), edits, cut))
    check(read_safetensors, path)


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    for name, reader in (("r.gguf", read_gguf), ("r.safetensors", read_safetensors)):
        path = tmp_path / name
        path.write_bytes(b"GGUF" + data if name.endswith("gguf") else data)
        check(reader, path)
