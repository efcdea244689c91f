"""A new model's design: the parameter count of every preset and family against the model
transformers builds from the exported config, and the checks on the shape."""

from __future__ import annotations

import pytest

from modelyard.create.design import FAMILIES, Design, hf_config, parameters, problems
from modelyard.create.presets import presets


def real_count(design: Design) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = hf_config(design, bos=1, eos=[2, 4], pad=None)
    model_type = values.pop("model_type")
    values.pop("architectures")
    with torch.device("meta"):  # the real module tree, without memory for its weights
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", ["small", "medium", "large", "free"])
def test_each_presets_count_is_exact(name: str, family: str) -> None:
    design = presets()[name].design.with_values({"family": family})
    assert parameters(design).total == real_count(design)


def test_untied_and_grouped_query_counts_are_exact() -> None:
    design = Design(vocab_size=12_345, hidden_size=192, layers=3, heads=6, kv_heads=2, ffn_size=500,
                    tied_embeddings=False)  # fmt: skip
    for family in FAMILIES:
        shaped = design.with_values({"family": family})
        assert parameters(shaped).total == real_count(shaped)


def test_presets_are_the_sizes_the_manual_names() -> None:
    counts = {name: parameters(p.design).total for name, p in presets().items()}
    assert 80e6 <= counts["small"] <= 130e6
    assert 400e6 <= counts["medium"] <= 600e6
    assert counts["large"] >= 1e9
    assert presets()["free"].label == "Completely-Free"


def fields_of(design: Design) -> dict[str, str]:
    return {p.field: p.message for p in problems(design)}


def test_the_shape_rules_each_name_their_field() -> None:
    assert fields_of(Design()) == {}
    assert "must divide the hidden size" in fields_of(Design(hidden_size=768, heads=10))["heads"]
    assert "must divide the 12 attention heads" in fields_of(Design(heads=12, kv_heads=5))["kv_heads"]
    assert "even" in fields_of(Design(hidden_size=900, heads=100, kv_heads=4))["heads"]
    assert fields_of(Design(vocab_size=9_999))["vocab_size"] == "must be between 10,000 and 100,000"
    assert "vocab_size" in fields_of(Design(vocab_size=100_001))
    assert "hidden_size" in fields_of(Design(hidden_size=64, heads=4, kv_heads=4))
    assert "hidden_size" in fields_of(Design(hidden_size=8_193))
    assert "layers" in fields_of(Design(layers=0))
    assert "family" in fields_of(Design(family="gpt2"))
    assert "dtype" in fields_of(Design(dtype="int3"))
    huge = fields_of(Design(hidden_size=8192, layers=128, heads=64, kv_heads=8, ffn_size=65_536))
    assert "parameters: keep between" in huge["layers"]
