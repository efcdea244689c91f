"""CTranslate2 model folders (faster-whisper's Whisper conversions): ``model.bin`` read as
CTranslate2 writes it (a version, the spec's name, then each variable's name, shape, type and
bytes, skipped by their length), beside a ``config.json`` that holds the language ids."""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from modelyard.categories import Category
from modelyard.errors import MalformedFile
from modelyard.formats.files import open_regular
from modelyard.formats.hf import load_json
from modelyard.formats.inspection import MODEL, Inspection, file_info

TYPES = ("F32", "I8", "I16", "I32", "F16", "BF16")  # CTranslate2's DataType, in its order
WIDTH = {"F32": 4, "I8": 1, "I16": 2, "I32": 4, "F16": 2, "BF16": 2}
MAX_VARIABLES = 100_000
MULTILINGUAL_VOCABULARY = 51865  # Whisper's multilingual vocabularies have this many tokens or more


def load_list(path: Path) -> list[object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedFile(path, f"not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(data, list):
        raise MalformedFile(path, "not a JSON list")
    return data


def is_ctranslate2(folder: Path) -> bool:
    if not (folder / "model.bin").is_file() or not (folder / "config.json").is_file():
        return False
    config = load_json(folder / "config.json")
    return "model_type" not in config and "architectures" not in config


def inspect_ctranslate2(folder: Path) -> Inspection:
    config = load_json(folder / "config.json")
    spec, parameters, main = read_model_bin(folder / "model.bin")
    if not spec.lower().startswith("whisper"):
        raise MalformedFile(
            folder / "model.bin", f"a CTranslate2 {spec}: modelyard serves CTranslate2's Whisper models only"
        )
    files = [f for f in sorted(folder.iterdir()) if f.is_file()]
    languages = config.get("lang_ids")
    languages = languages if isinstance(languages, list) else []
    vocabulary = folder / "vocabulary.json"
    words = len(load_list(vocabulary)) if vocabulary.is_file() else 0
    return Inspection(
        path=folder,
        format="ctranslate2",
        kind=MODEL,
        category=Category.SPEECH_TO_TEXT,
        architecture="whisper",
        quantization=main,
        parameters=parameters,
        files=[file_info(f) for f in files],
        # CTranslate2 takes a Whisper as multilingual by its vocabulary, as Whisper's own code does
        facts={"spec": spec, "languages": len(languages), "multilingual": words >= MULTILINGUAL_VOCABULARY},
    )


def read_model_bin(path: Path) -> tuple[str, int, str | None]:
    """(the spec's name, the parameters, the most common weight type)."""
    try:
        with open_regular(path) as f:
            end = os.fstat(f.fileno()).st_size
            (_version,) = _unpack(f, "I")
            spec = _string(f)
            _revision, count = _unpack(f, "II")
            if count > MAX_VARIABLES:
                raise ValueError(f"{count} variables")
            parameters, types = 0, Counter[str]()
            for _ in range(count):
                _string(f)
                (rank,) = _unpack(f, "B")
                shape = _unpack(f, "I" * rank) if rank else ()
                kind, size = _unpack(f, "BI")
                if kind >= len(TYPES):
                    raise ValueError(f"data type {kind}")
                elements = 1
                for d in shape:
                    elements *= d
                if elements * WIDTH[TYPES[kind]] != size:
                    raise ValueError("a variable's size does not match its shape")
                parameters += elements
                types[TYPES[kind]] += elements
                if f.seek(size, 1) > end:
                    raise ValueError("the file ends early")
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise MalformedFile(path, f"not a readable CTranslate2 model ({e})") from None
    main = types.most_common(1)[0][0] if types else None
    return spec, parameters, main


def _unpack(f: BinaryIO, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("the file ends early")
    return struct.unpack("<" + fmt, data)


def _string(f: BinaryIO) -> str:
    (length,) = _unpack(f, "H")
    data = f.read(length)
    if len(data) != length:
        raise ValueError("the file ends early")
    return data.rstrip(b"\0").decode("utf-8")
