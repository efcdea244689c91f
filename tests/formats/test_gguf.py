from __future__ import annotations

import struct
from pathlib import Path

import pytest

import builders as b
from modelyard.errors import MalformedFile, UnsupportedFormat
from modelyard.formats.gguf import read_gguf


def test_tiny_llama_facts(tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "tiny.gguf", chat_template="{{ x }}")
    g = read_gguf(path)
    facts = g.facts()
    assert g.architecture == "llama"
    assert g.kind == "model"
    assert g.quantization == "F32"
    assert facts["context_length"] == 512
    assert facts["block_count"] == 2
    assert facts["embedding_length"] == 64
    assert facts["head_count"] == 4
    assert facts["head_count_kv"] == 2
    assert facts["key_length"] == 16  # 64 / 4
    assert facts["chat_template"] is True
    assert facts["vocab_size"] == 3 + 256 + 16
    # token_embd + output (275 x 64 each), 2 norms per layer + output norm, 7 matrices per layer
    vocab = facts["vocab_size"]
    per_layer = 2 * 64 + 64 * 64 * 2 + 2 * (32 * 64) + 3 * 128 * 64
    assert g.parameter_count == 2 * vocab * 64 + 64 + 2 * per_layer


@pytest.mark.parametrize(("quant", "label"), [("F16", "F16"), ("Q8_0", "Q8_0")])
def test_quantization_label(tmp_path: Path, quant: str, label: str) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "m.gguf", quant=quant)
    assert read_gguf(path).quantization == label


def test_kinds(tmp_path: Path) -> None:
    assert read_gguf(b.write_lora_gguf(tmp_path / "l.gguf")).kind == "lora"
    assert read_gguf(b.write_mmproj_gguf(tmp_path / "p.gguf")).kind == "mmproj"


def test_gemma_real_file(gemma: Path) -> None:
    g = read_gguf(gemma)
    facts = g.facts()
    assert g.architecture == "gemma3"
    assert g.quantization == "Q4_K_M"
    assert facts["context_length"] == 32768
    assert facts["block_count"] == 18
    assert facts["head_count"] == 4
    assert facts["head_count_kv"] == 1
    assert facts["key_length"] == 256
    assert facts["sliding_window"] == 512
    assert facts["chat_template"] is False
    assert facts["vocab_size"] == 262144
    assert 260_000_000 < g.parameter_count < 280_000_000
    # the 262k-entry vocabulary is skipped, not parsed: the metadata holds a summary
    assert g.arrays["tokenizer.ggml.tokens"].count == 262144


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> bytes:
    (path,) = b.write_llama_gguf(tmp_path / "tiny.gguf")
    return path.read_bytes()


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    return path


def test_truncated_anywhere_is_malformed(tmp_path: Path, tiny: bytes) -> None:
    for cut in (0, 3, 10, 30, 200, 2000, len(tiny) // 2, len(tiny) - 1):
        with pytest.raises(MalformedFile, match=r"truncated|too short"):
            read_gguf(write(tmp_path, tiny[:cut]))


def test_bad_magic(tmp_path: Path, tiny: bytes) -> None:
    with pytest.raises(MalformedFile, match="not a GGUF file"):
        read_gguf(write(tmp_path, b"GGML" + tiny[4:]))


def test_unsupported_version(tmp_path: Path, tiny: bytes) -> None:
    with pytest.raises(UnsupportedFormat, match="version 7"):
        read_gguf(write(tmp_path, tiny[:4] + struct.pack("<I", 7) + tiny[8:]))


def test_absurd_counts(tmp_path: Path, tiny: bytes) -> None:
    huge = struct.pack("<Q", 1 << 60)
    with pytest.raises(MalformedFile, match="absurd tensor count"):
        read_gguf(write(tmp_path, tiny[:8] + huge + tiny[16:]))
    with pytest.raises(MalformedFile, match="absurd metadata count"):
        read_gguf(write(tmp_path, tiny[:16] + huge + tiny[24:]))


def test_absurd_string_length(tmp_path: Path, tiny: bytes) -> None:
    # the first key's length prefix sits right after the header
    with pytest.raises(MalformedFile, match="truncated"):
        read_gguf(write(tmp_path, tiny[:24] + struct.pack("<Q", 1 << 62) + tiny[32:]))


def test_wrong_value_type(tmp_path: Path) -> None:
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "w.gguf"), "llama")
    w.add_string("general.file_type", "Q4_K_M")
    w.add_uint32("llama.context_length", 128)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    g = read_gguf(tmp_path / "w.gguf")
    with pytest.raises(MalformedFile, match=r"general.file_type should be an integer"):
        g.facts()
