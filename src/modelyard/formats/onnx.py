"""ONNX files: their graph's inputs and outputs, read from the protobuf itself (the fields of
onnx.proto: ModelProto.graph, GraphProto.input / output / initializer, ValueInfoProto's tensor
shape). Nodes and weights are skipped by their length, so a 200 MB model reads in milliseconds,
and nothing of onnx or onnxruntime needs to be installed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import MalformedFile

Dim = int | str  # a size, or a named (dynamic) axis


@dataclass
class Graph:
    inputs: list[tuple[str, list[Dim]]] = field(default_factory=list)  # without the weights
    outputs: list[tuple[str, list[Dim]]] = field(default_factory=list)
    weights: int = 0  # parameters stored in the file (its initializers)


def read_graph(path: Path) -> Graph:
    """The graph's inputs and outputs, or MalformedFile."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            for number, at, length in _outline(f, 0, size):
                if number == 7 and length is not None:
                    return _graph(f, at, at + length)
        raise ValueError("no graph")
    except (ValueError, IndexError) as e:
        raise MalformedFile(path, f"not a readable ONNX model ({e})") from None
    except OSError as e:
        raise MalformedFile(path, f"could not be read: {e}") from None


def _graph(f: BinaryIO, start: int, end: int) -> Graph:
    graph, weights = Graph(), set()
    inputs: list[tuple[str, list[Dim]]] = []
    for number, at, length in list(_outline(f, start, end)):
        if length is None:
            continue
        if number in (11, 12):
            f.seek(at)
            info = _value_info(memoryview(f.read(length)))
            (inputs if number == 11 else graph.outputs).append(info)
        elif number == 5:
            name, count = _initializer(f, at, at + length)
            weights.add(name)
            graph.weights += count
    graph.inputs = [i for i in inputs if i[0] not in weights]  # old exports list weights as inputs
    return graph


def _initializer(f: BinaryIO, start: int, end: int) -> tuple[str, int]:
    """A TensorProto's name and element count; its data is skipped."""
    name, count = "", 1
    for number, at, length in list(_outline(f, start, end)):
        if number == 8 and length is not None:
            f.seek(at)
            name = f.read(length).decode("utf-8", "replace")
        elif number == 1 and length is None:  # dims, one varint each
            count *= at
        elif number == 1 and length is not None:  # dims, packed
            f.seek(at)
            for d in _packed(memoryview(f.read(length))):
                count *= d
    return name, count


def _outline(f: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int | None]]:
    """The fields of the message between ``start`` and ``end`` of a file, without reading what
    they hold: (number, offset, length) for length-delimited fields, (number, value, None) for
    varints; fixed-width fields are skipped."""
    at = start
    while at < end:
        f.seek(at)
        head = memoryview(f.read(min(20, end - at)))
        key, used = _varint(head, 0)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, used = _varint(head, used)
            yield number, value, None
            at += used
        elif kind == 2:
            length, used = _varint(head, used)
            if at + used + length > end:
                raise ValueError("a field runs past the end")
            yield number, at + used, length
            at += used + length
        elif kind in (1, 5):
            at += used + (8 if kind == 1 else 4)
        else:
            raise ValueError(f"wire type {kind}")


def _value_info(data: memoryview) -> tuple[str, list[Dim]]:
    name, dims = "", []
    for number, value in _fields(data):
        if number == 1 and isinstance(value, memoryview):
            name = bytes(value).decode("utf-8", "replace")
        elif number == 2 and isinstance(value, memoryview):  # TypeProto
            for n, tensor in _fields(value):
                if n == 1 and isinstance(tensor, memoryview):
                    dims = _shape(tensor)
    return name, dims


def _shape(tensor: memoryview) -> list[Dim]:
    dims: list[Dim] = []
    for n, shape in _fields(tensor):
        if n != 2 or not isinstance(shape, memoryview):
            continue
        for m, dim in _fields(shape):
            if m != 1 or not isinstance(dim, memoryview):
                continue
            size: Dim = "?"
            for k, v in _fields(dim):
                if k == 1 and isinstance(v, int):
                    size = v
                elif k == 2 and isinstance(v, memoryview):
                    size = bytes(v).decode("utf-8", "replace")
            dims.append(size)
    return dims


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _fields(data: memoryview) -> list[tuple[int, int | memoryview]]:
    """The (field number, value) pairs of one message: varints as ints, length-delimited fields
    as views; fixed-width fields are skipped."""
    out: list[tuple[int, int | memoryview]] = []
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif kind == 2:
            size, at = _varint(data, at)
            if at + size > end:
                raise ValueError("a field runs past the end")
            out.append((number, data[at : at + size]))
            at += size
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        else:
            raise ValueError(f"wire type {kind}")
    return out


def _packed(data: memoryview) -> list[int]:
    values, at = [], 0
    while at < len(data):
        value, at = _varint(data, at)
        values.append(value)
    return values
