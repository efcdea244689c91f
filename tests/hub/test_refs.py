"""What people type to name a model on a hub."""

from __future__ import annotations

import pytest

from modelyard.errors import InvalidRef, UnsafePath
from modelyard.hub.refs import Ref, Source, is_local, parse_ref, quantization_in
from modelyard.hub.remote import safe_relative

C = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("org/model", Ref(Source.HF, "org/model")),
        ("org/model:dev", Ref(Source.HF, "org/model", "dev")),
        (f"org/model:{C}", Ref(Source.HF, "org/model", C)),
        ("org/model:q4_k_m", Ref(Source.HF, "org/model", quantization="Q4_K_M")),
        ("org/model:UD-Q4_K_XL", Ref(Source.HF, "org/model", quantization="UD-Q4_K_XL")),
        ("hf.co/bartowski/Tiny-GGUF:Q8_0", Ref(Source.HF, "bartowski/Tiny-GGUF", quantization="Q8_0")),
        ("org/model/sub/file.gguf", Ref(Source.HF, "org/model", file="sub/file.gguf")),
        ("https://huggingface.co/org/model", Ref(Source.HF, "org/model")),
        ("https://hf-mirror.com/org/model/tree/v2", Ref(Source.HF, "org/model", "v2")),
        ("https://huggingface.co/org/m/blob/main/a.gguf", Ref(Source.HF, "org/m", "main", file="a.gguf")),
        ("https://huggingface.co/org/m/resolve/abc/x/y.bin", Ref(Source.HF, "org/m", "abc", file="x/y.bin")),
        ("ms:qwen/Qwen3-0.6B", Ref(Source.MODELSCOPE, "qwen/Qwen3-0.6B")),
        ("https://modelscope.cn/models/qwen/Q", Ref(Source.MODELSCOPE, "qwen/Q")),
        (
            "https://modelscope.cn/models/qwen/Q/file/view/master/q.gguf",
            Ref(Source.MODELSCOPE, "qwen/Q", "master", file="q.gguf"),
        ),
        # the path rule of the model-compose manual: a bare name is a repo of the default hub
        ("gpt2", Ref(Source.HF, "gpt2")),
        ("llama3.2", Ref(Source.HF, "llama3.2")),
        ("ollama:llama3.2", Ref(Source.OLLAMA, "library/llama3.2")),
        # the old spelling, where it cannot mean a hub repo: name:tag is Ollama's
        ("gemma3:270m", Ref(Source.OLLAMA, "library/gemma3", "270m")),
        ("ollama:someone/model:q4", Ref(Source.OLLAMA, "someone/model", "q4")),
        ("https://ollama.com/library/qwen3:0.6b", Ref(Source.OLLAMA, "library/qwen3", "0.6b")),
    ],
)
def test_references(text: str, ref: Ref) -> None:
    assert parse_ref(text) == ref


def test_paths_are_told_from_hub_names() -> None:
    for local in ("/models/a.gguf", "./a", "../a", "~/models/a", "."):
        assert is_local(local)
    for remote in ("gpt2", "org/model", "ollama:llama3", "hf.co/org/model", "models/a.gguf"):
        assert not is_local(remote)


def test_a_source_given_apart_applies_to_bare_names() -> None:
    assert parse_ref("qwen/Q", Source.MODELSCOPE) == Ref(Source.MODELSCOPE, "qwen/Q")
    assert parse_ref("org/model", Source.OLLAMA) == Ref(Source.OLLAMA, "org/model")


@pytest.mark.parametrize(
    "text", ["", "  ", "org/../x", "a/b c", "ollama:a/b/c", "https://huggingface.co/org"]
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidRef):
        parse_ref(text)


def test_quantization_in_names() -> None:
    assert quantization_in("Llama-3.2-1B-Instruct-Q4_K_M.gguf") == "Q4_K_M"
    assert quantization_in("model-iq2_xxs-00001-of-00003.gguf") == "IQ2_XXS"
    assert quantization_in("mmproj-model-f16.gguf") == "F16"
    assert quantization_in("model.gguf") is None


@pytest.mark.parametrize("name", ["../x.gguf", "/etc/passwd", "a/../../b", "C:/x", "a\\..\\b", ""])
def test_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafePath):
        safe_relative(name)
    assert str(safe_relative("sub/dir/model.gguf")) == "sub/dir/model.gguf"
