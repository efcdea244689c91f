"""A fast, defensive GGUF reader: header, metadata and tensor infos, never tensor data.

Big arrays (the tokenizer's vocabulary, scores, merges) are skipped, not parsed: a string array is
walked by its length prefixes only, a numeric array is stepped over in one move. Every count and
length is checked against the bytes that are really there before it is used, so a damaged file
raises MalformedFile quickly and never makes the reader allocate more than the file's header.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from modelyard.errors import MalformedFile, UnsupportedFormat
from modelyard.formats.files import open_regular
from modelyard.formats.ggml import FILE_TYPES, POOLING_TYPES, TENSOR_TYPES

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
# Arrays longer than this are recorded as ArrayInfo instead of being parsed.
MAX_PARSED_ARRAY = 4096
# Plausibility limits: real files have a few hundred tensors and keys.
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_ELEMENTS = 1 << 50
FIRST_READ = 8 << 20

SHARD_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)

# value type id -> (struct format, size) for scalars
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING = 8
_ARRAY = 9
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class ArrayInfo:
    """A large metadata array left unparsed: its element type, length and where it lies."""

    item_type: int
    count: int
    offset: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the fastest-moving dimension
    type_id: int
    offset: int  # relative to the start of the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES[self.type_id].name

    @property
    def nbytes(self) -> int:
        t = TENSOR_TYPES[self.type_id]
        return self.n_elements // t.block_size * t.type_size


def _block_of(name: str) -> int | None:
    if name.startswith("blk."):
        part = name.split(".", 2)[1]
        return int(part) if part.isdigit() else None
    return None


@dataclass
class GGUFFile:
    """What one GGUF file says about itself."""

    path: Path
    version: int
    file_size: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    arrays: dict[str, ArrayInfo] = field(default_factory=dict)

    @functools.cached_property
    def layout(self) -> list[tuple[int | None, int, bool]]:
        """Each tensor's block (``blk.N.``; None outside the blocks), its bytes, and whether it
        is the token embedding: worked out once per file (an estimate goes over them many
        times)."""
        return [(_block_of(t.name), t.nbytes, t.name.startswith("token_embd")) for t in self.tensors]

    # -- typed access ------------------------------------------------------------------------

    def get_str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise MalformedFile(self.path, f"metadata {key} should be a string, not {_kind(value)}")
        return value

    def get_int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedFile(self.path, f"metadata {key} should be an integer, not {_kind(value)}")
        return value

    def get_float(self, key: str) -> float | None:
        value = self.metadata.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedFile(self.path, f"metadata {key} should be a number, not {_kind(value)}")
        return float(value)

    def get_int_or_layers(self, key: str) -> int | tuple[int, ...] | None:
        """An integer, or one integer per layer (some models vary head counts by layer)."""
        value = self.metadata.get(key)
        if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
        return self.get_int(key)

    def arch_int(self, suffix: str) -> int | None:
        return self.get_int(f"{self.architecture}.{suffix}")

    # -- derived facts -----------------------------------------------------------------------

    @property
    def architecture(self) -> str:
        arch = self.get_str("general.architecture")
        if not arch:
            raise MalformedFile(self.path, "general.architecture is missing")
        return arch

    @property
    def kind(self) -> str:
        """model, lora (an adapter) or mmproj (a multimodal projector)."""
        general_type = self.get_str("general.type")
        if general_type == "adapter" or self.get_str("adapter.type") is not None:
            return "lora"
        if general_type in ("mmproj", "clip") or self.architecture == "clip":
            return "mmproj"
        return "model"

    @property
    def file_type(self) -> int | None:
        return self.get_int("general.file_type")

    @property
    def quantization(self) -> str | None:
        """The quantization label: from general.file_type, else the dominant tensor type."""
        file_type = self.file_type
        if file_type is not None and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        totals: dict[str, int] = {}
        for t in self.tensors:
            if len(t.shape) >= 2:
                totals[t.type_name] = totals.get(t.type_name, 0) + t.nbytes
        return max(totals, key=lambda k: totals[k]) if totals else None

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get("tokenizer.chat_template"))

    @property
    def pooling(self) -> str | None:
        pooling = self.arch_int("pooling_type")
        return None if pooling is None else POOLING_TYPES.get(pooling, str(pooling))

    @property
    def split(self) -> tuple[int, int] | None:
        """(index from 0, count) when this file is one shard of a split model."""
        count = self.get_int("split.count")
        if count is None or count <= 1:
            return None
        return self.get_int("split.no") or 0, count

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        return {t.name: t.shape for t in self.tensors}

    def facts(self) -> dict[str, Any]:
        """The architecture facts that matter for loading and estimating memory."""
        arch = self.architecture
        head_count = self.get_int_or_layers(f"{arch}.attention.head_count")
        embedding = self.arch_int("embedding_length")
        key_length = self.arch_int("attention.key_length")
        if key_length is None and embedding and isinstance(head_count, int) and head_count:
            key_length = embedding // head_count
        facts: dict[str, Any] = {
            "gguf_version": self.version,
            "kind": self.kind,
            "name": self.get_str("general.name"),
            "basename": self.get_str("general.basename"),
            "size_label": self.get_str("general.size_label"),
            "file_type": self.file_type,
            "context_length": self.arch_int("context_length"),
            "block_count": self.arch_int("block_count"),
            "embedding_length": embedding,
            "feed_forward_length": self.get_int_or_layers(f"{arch}.feed_forward_length"),
            "head_count": head_count,
            "head_count_kv": self.get_int_or_layers(f"{arch}.attention.head_count_kv"),
            "key_length": key_length,
            "value_length": self.arch_int("attention.value_length") or key_length,
            "sliding_window": self.arch_int("attention.sliding_window"),
            "rope_freq_base": self.get_float(f"{arch}.rope.freq_base"),
            "expert_count": self.arch_int("expert_count"),
            "pooling": self.pooling,
            "chat_template": self.has_chat_template,
            "tokenizer": self.get_str("tokenizer.ggml.model"),
            "vocab_size": self._vocab_size(),
            "tensor_count": len(self.tensors),
            "tensor_bytes": self.tensor_bytes,
        }
        if self.kind == "lora":
            facts["lora_alpha"] = self.get_float("adapter.lora.alpha")
        return {k: v for k, v in facts.items() if v is not None}

    def _vocab_size(self) -> int | None:
        tokens = self.arrays.get("tokenizer.ggml.tokens")
        if tokens is not None:
            return tokens.count
        value = self.metadata.get("tokenizer.ggml.tokens")
        return len(value) if isinstance(value, tuple) else None


class _Cursor:
    """Bounds-checked reads from the front of the file, which it reads in growing chunks: the
    header is a few MB at most and reading it beats faulting in mmap pages one by one."""

    def __init__(self, path: Path, f: BinaryIO, size: int) -> None:
        self.path = path
        self.f = f
        self.end = size
        self.buf = f.read(min(size, FIRST_READ))
        self.pos = 0

    def _grow(self, upto: int) -> None:
        want = min(self.end, max(upto, 2 * len(self.buf)))
        self.f.seek(len(self.buf))
        self.buf += self.f.read(want - len(self.buf))

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.end:
            raise MalformedFile(
                self.path,
                f"truncated: {what} at byte {self.pos} needs {n} bytes, "
                f"the file has {self.end - self.pos} left",
            )
        if self.pos + n > len(self.buf):
            self._grow(self.pos + n)

    def u32(self, what: str) -> int:
        self.need(4, what)
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self, what: str) -> int:
        self.need(8, what)
        (v,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def string(self, what: str) -> str:
        n = self.u64(f"length of {what}")
        self.need(n, what)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def scalar(self, type_id: int, what: str) -> Any:
        fmt, size = _SCALARS[type_id]
        self.need(size, what)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def skip_strings(self, count: int, what: str) -> None:
        """Step over ``count`` length-prefixed strings without decoding them."""
        self.need(count * 8, what)  # every string has at least its 8-byte length
        off = self.pos
        unpack = _U64.unpack_from
        left = count
        while left:
            buf = self.buf
            done = 0
            try:
                for done in range(left):  # noqa: B007 - done counts the strings stepped over
                    off += 8 + unpack(buf, off)[0]
                done = left
            except (struct.error, OverflowError):
                # Past the bytes read so far: read more, unless the file ends here.
                if off + 8 > self.end or len(buf) >= self.end:
                    raise MalformedFile(
                        self.path, f"truncated: {what} runs past the end of the file"
                    ) from None
                self.pos = off
                self._grow(off + 8)
            left -= done
        if off > self.end:
            raise MalformedFile(self.path, f"truncated: {what} runs past the end of the file")
        self.pos = off


def _read_value(cur: _Cursor, type_id: int, key: str, arrays: dict[str, ArrayInfo]) -> Any:
    if type_id in _SCALARS:
        return cur.scalar(type_id, f"value of {key}")
    if type_id == _STRING:
        return cur.string(f"value of {key}")
    if type_id != _ARRAY:
        raise MalformedFile(cur.path, f"metadata {key} has unknown value type {type_id}")
    item_type = cur.u32(f"array type of {key}")
    count = cur.u64(f"array length of {key}")
    start = cur.pos
    if item_type in _SCALARS:
        fmt, size = _SCALARS[item_type]
        cur.need(count * size, f"array {key} ({count} items)")
        if count <= MAX_PARSED_ARRAY:
            values = struct.unpack_from(f"<{count}{fmt[1]}", cur.buf, cur.pos)
            cur.pos += count * size
            return tuple(values)
        cur.pos += count * size
    elif item_type == _STRING:
        if count <= 64:
            return tuple(cur.string(f"item of {key}") for _ in range(count))
        cur.skip_strings(count, f"array {key} ({count} strings)")
    elif item_type == _ARRAY:
        raise MalformedFile(cur.path, f"metadata {key} is a nested array, which GGUF readers refuse")
    else:
        raise MalformedFile(cur.path, f"metadata {key} has unknown array item type {item_type}")
    arrays[key] = ArrayInfo(item_type=item_type, count=count, offset=start)
    return arrays[key]


def _kind(value: object) -> str:
    """What a value is, for an error message (never the value: it is the file's content)."""
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array"}.get(
        type(value), type(value).__name__
    )


def read_gguf(path: Path | str) -> GGUFFile:
    """Read a GGUF file's header, metadata and tensor infos. Raises MalformedFile or
    UnsupportedFormat when the file is not a sound GGUF."""
    path = Path(path)
    with open_regular(path) as f:
        size = f.seek(0, 2)
        if size < 24:
            raise MalformedFile(path, f"truncated: {size} bytes is too short for a GGUF header")
        f.seek(0)
        return _parse(path, _Cursor(path, f, size), size)


def _parse(path: Path, cur: _Cursor, size: int) -> GGUFFile:
    magic = cur.buf[0:4]
    if magic != MAGIC:
        raise MalformedFile(path, "not a GGUF file (it does not begin with GGUF)")
    cur.pos = 4
    version = cur.u32("version")
    if version not in (2, 3):
        raise UnsupportedFormat(
            path,
            f"GGUF version {version} is not supported (2 and 3 are)",
            hint="convert it with a current llama.cpp",
        )
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    # A key-value pair takes at least 8 + 4 bytes, a tensor info at least 8 + 4 + 8 + 4 + 8.
    if n_tensors > MAX_TENSORS or n_tensors * 32 > size:
        raise MalformedFile(path, f"absurd tensor count {n_tensors} for a {size}-byte file")
    if n_kv > MAX_KV or n_kv * 12 > size:
        raise MalformedFile(path, f"absurd metadata count {n_kv} for a {size}-byte file")

    metadata: dict[str, Any] = {}
    arrays: dict[str, ArrayInfo] = {}
    for i in range(n_kv):
        key = cur.string(f"key of metadata entry {i}")
        type_id = cur.u32(f"value type of {key}")
        metadata[key] = _read_value(cur, type_id, key, arrays)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        isinstance(alignment, bool)
        or not isinstance(alignment, int)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise MalformedFile(path, "general.alignment must be a power of two")

    tensors: list[TensorInfo] = []
    for i in range(n_tensors):
        name = cur.string(f"name of tensor {i}")
        n_dims = cur.u32(f"dimension count of {name}")
        if n_dims > MAX_DIMS:
            raise MalformedFile(path, f"tensor {name} has {n_dims} dimensions (at most {MAX_DIMS})")
        cur.need(8 * n_dims, f"shape of {name}")
        shape = struct.unpack_from(f"<{n_dims}Q", cur.buf, cur.pos)
        cur.pos += 8 * n_dims
        type_id = cur.u32(f"type of {name}")
        offset = cur.u64(f"offset of {name}")
        info = TensorInfo(name=name, shape=tuple(int(d) for d in shape), type_id=type_id, offset=offset)
        if type_id not in TENSOR_TYPES:
            raise UnsupportedFormat(
                path,
                f"tensor {name} has ggml type {type_id}, which this modelyard does not know",
                hint="upgrade modelyard",
            )
        if info.n_elements > MAX_ELEMENTS:
            raise MalformedFile(path, f"tensor {name} has an absurd shape {info.shape}")
        if shape and shape[0] % TENSOR_TYPES[type_id].block_size:
            raise MalformedFile(
                path,
                f"tensor {name}: row of {shape[0]} is not a whole number of {info.type_name} blocks",
            )
        if offset % alignment:
            raise MalformedFile(path, f"tensor {name} is not aligned to {alignment} bytes")
        tensors.append(info)

    data_offset = -(-cur.pos // alignment) * alignment
    data_size = size - data_offset
    for t in tensors:
        end = t.offset + t.nbytes
        if end > data_size:
            raise MalformedFile(
                path,
                f"truncated: tensor {t.name} ends at byte {data_offset + end} but the file has {size} bytes",
            )
    return GGUFFile(
        path=path,
        version=version,
        file_size=size,
        metadata=metadata,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        arrays=arrays,
    )


def shard_paths(path: Path) -> list[Path] | None:
    """The paths of all shards when ``path`` is named like ``name-00001-of-00003.gguf``."""
    m = SHARD_NAME.match(path.name)
    if not m:
        return None
    count = int(m.group("count"))
    width = len(m.group("no"))
    return [
        path.with_name(f"{m.group('prefix')}-{i:0{width}d}-of-{m.group('count')}.gguf")
        for i in range(1, count + 1)
    ]
