"""safetensors: the JSON header only (dtypes, shapes, parameter count), and sharded index files."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import IncompleteModel, MalformedFile
from modelyard.formats.files import open_regular

# Real headers are a few MB at most; refuse to read more than this.
MAX_HEADER = 100 << 20

DTYPE_BITS: dict[str, int] = {
    "F64": 64,
    "F32": 32,
    "F16": 16,
    "BF16": 16,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
    "I64": 64,
    "I32": 32,
    "I16": 16,
    "I8": 8,
    "U64": 64,
    "U32": 32,
    "U16": 16,
    "U8": 8,
    "BOOL": 8,
}


@dataclass(frozen=True)
class TensorHeader:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class SafetensorsFile:
    path: Path
    file_size: int
    tensors: dict[str, TensorHeader]
    metadata: dict[str, str]

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors.values())

    def dtype_counts(self) -> dict[str, int]:
        """Elements per dtype."""
        counts: dict[str, int] = {}
        for t in self.tensors.values():
            counts[t.dtype] = counts.get(t.dtype, 0) + t.n_elements
        return counts

    @property
    def main_dtype(self) -> str | None:
        counts = self.dtype_counts()
        return max(counts, key=lambda k: counts[k]) if counts else None


def read_safetensors(path: Path | str) -> SafetensorsFile:
    """Read and check a safetensors header. Raises MalformedFile when it does not hold up."""
    path = Path(path)
    with open_regular(path) as f:
        size = f.seek(0, 2)
        if size < 8:
            raise MalformedFile(path, f"truncated: {size} bytes is too short for safetensors")
        f.seek(0)
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER or n + 8 > size:
            raise MalformedFile(
                path, f"its header length is impossible for a {size}-byte file (truncated or not safetensors)"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise MalformedFile(path, f"header is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise MalformedFile(path, "header is not a JSON object")
    data_size = size - 8 - n
    metadata_raw = header.pop("__metadata__", None) or {}
    if not isinstance(metadata_raw, dict):
        raise MalformedFile(path, "__metadata__ is not an object")
    metadata = {str(k): str(v) for k, v in metadata_raw.items()}
    tensors = {name: _tensor(path, name, entry, data_size) for name, entry in header.items()}
    return SafetensorsFile(path=path, file_size=size, tensors=tensors, metadata=metadata)


def _tensor(path: Path, name: str, entry: Any, data_size: int) -> TensorHeader:
    if not isinstance(entry, dict):
        raise MalformedFile(path, f"tensor {name}: entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise MalformedFile(path, f"tensor {name}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise MalformedFile(path, f"tensor {name}: shape {shape!r} is not a list of sizes")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise MalformedFile(path, f"tensor {name}: data_offsets {offsets!r} are not [begin, end]")
    begin, end = offsets
    t = TensorHeader(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)
    expected = -(-t.n_elements * DTYPE_BITS[dtype] // 8)
    if not 0 <= begin <= end or end - begin != expected:
        raise MalformedFile(
            path,
            f"tensor {name}: {end - begin} bytes of data for {expected} bytes of {dtype} {t.shape}",
        )
    if end > data_size:
        raise MalformedFile(
            path, f"truncated: tensor {name} ends at data byte {end}, the file holds {data_size}"
        )
    return t


@dataclass
class ShardedSafetensors:
    index: Path
    shards: list[SafetensorsFile]

    @property
    def parameter_count(self) -> int:
        return sum(s.parameter_count for s in self.shards)

    @property
    def tensors(self) -> dict[str, TensorHeader]:
        merged: dict[str, TensorHeader] = {}
        for s in self.shards:
            merged.update(s.tensors)
        return merged


def read_index(index: Path) -> ShardedSafetensors:
    """Read ``*.safetensors.index.json`` and every shard it names; all must be present."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedFile(index, f"not valid JSON ({e.__class__.__name__})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise MalformedFile(index, "weight_map is missing or not a map of tensor -> file")
    names = sorted(set(weight_map.values()))
    for name in names:
        if Path(name).name != name:
            raise MalformedFile(index, f"shard name {name!r} points outside the folder")
    missing = [n for n in names if not (index.parent / n).is_file()]
    if missing:
        raise IncompleteModel(
            index,
            f"{len(missing)} of {len(names)} shards are missing: {', '.join(missing[:5])}",
            hint="download the missing shards into the same folder",
        )
    shards = [read_safetensors(index.parent / n) for n in names]
    present = {t for s in shards for t in s.tensors}
    absent = [t for t in weight_map if t not in present]
    if absent:
        raise IncompleteModel(
            index,
            f"{len(absent)} tensors listed in the index are in no shard (first: {absent[0]})",
            hint="the shards do not belong to this index: download them again",
        )
    return ShardedSafetensors(index=index, shards=shards)
