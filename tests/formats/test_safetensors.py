from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

import builders as b
from modelyard.errors import IncompleteModel, MalformedFile
from modelyard.formats.safetensors import read_index, read_safetensors


def test_header_facts(tmp_path: Path) -> None:
    path = b.write_safetensors(tmp_path / "m.safetensors", {"a.weight": (8, 4), "b.bias": (8,)})
    st = read_safetensors(path)
    assert st.parameter_count == 40
    assert st.tensors["a.weight"].shape == (8, 4)
    assert st.main_dtype == "F16"


def test_sharded_index(tmp_path: Path) -> None:
    folder = b.write_hf_llama(tmp_path / "m", shards=3)
    sharded = read_index(folder / "model.safetensors.index.json")
    assert len(sharded.shards) == 3
    single = b.write_hf_llama(tmp_path / "one")
    assert sharded.parameter_count == read_safetensors(single / "model.safetensors").parameter_count


def test_missing_shard(tmp_path: Path) -> None:
    folder = b.write_hf_llama(tmp_path / "m", shards=3)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(IncompleteModel, match="1 of 3 shards are missing: model-00002-of-00003"):
        read_index(folder / "model.safetensors.index.json")


def raw(tmp_path: Path, header: object, data: bytes = b"") -> Path:
    blob = json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def test_malformed(tmp_path: Path) -> None:
    cases: list[tuple[object, bytes, str]] = [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated"),
        ({"a": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 8, "4 bytes of data for 8"),
        ({"a": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, b"\0" * 8, "not a list of sizes"),
        ([1, 2], b"", "not a JSON object"),
    ]
    for header, data, message in cases:
        with pytest.raises(MalformedFile, match=message):
            read_safetensors(raw(tmp_path, header, data))
    path = tmp_path / "y.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(MalformedFile, match="header length"):
        read_safetensors(path)
