"""Device, precision and quantization for torch models, from the backends' options."""

from __future__ import annotations

import logging
from typing import Any

from modelyard.errors import EngineError

log = logging.getLogger(__name__)


def device_of(wanted: str) -> str:
    import torch

    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if wanted == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    if wanted == "mps" and not torch.backends.mps.is_available():
        raise EngineError("device 'mps' was asked for, but this machine has no Apple GPU")
    return wanted


def dtype_of(precision: str, device: str) -> Any:
    """auto: float16 on a GPU, float32 on the CPU (the model-compose manual's rule)."""
    import torch

    if precision == "auto":
        return torch.float16 if device in ("cuda", "mps") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]


def quantization_config(kind: str, dtype: Any, *, compute: Any = None, double_quant: bool = False) -> Any:
    """A bitsandbytes config for int8 / int4 (fp4) / nf4 (its CPU backend runs them too)."""
    if kind == "none":
        return None
    try:
        import bitsandbytes  # noqa: F401
        import transformers
    except ImportError as e:
        raise EngineError(
            f"quantization {kind} needs bitsandbytes: `modelyard backends install transformers` adds it"
        ) from e
    config: Any = transformers.BitsAndBytesConfig
    if kind == "int8":
        return config(load_in_8bit=True)
    return config(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4" if kind == "nf4" else "fp4",
        bnb_4bit_compute_dtype=compute or dtype,
        bnb_4bit_use_double_quant=double_quant,
    )


def memory_map(options: Any, device: str) -> dict[Any, str] | None:
    """accelerate's max_memory from the GiB caps per GPU and for the CPU (None: no caps)."""
    caps: dict[Any, str] = {}
    if options.gpu_memory and device == "cuda":
        caps.update({i: f"{gib:g}GiB" for i, gib in enumerate(options.gpu_memory)})
    if options.cpu_memory is not None:
        caps["cpu"] = f"{options.cpu_memory:g}GiB"
    return caps or None


def rope(config: Any, options: Any) -> bool:
    """Apply the RoPE options to a model config (transformers 5's rope_parameters); whether any was set."""
    if options.rope_freq_base is None and options.alpha_value is None and options.compress_pos_emb is None:
        return False
    text = getattr(config, "text_config", None) or config
    params = dict(getattr(text, "rope_parameters", None) or {"rope_type": "default"})
    theta = float(
        options.rope_freq_base or params.get("rope_theta") or getattr(text, "rope_theta", None) or 10000.0
    )
    if options.alpha_value is not None:  # text-generation-webui's NTK rule: base * alpha^(d/(d-2))
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        theta *= options.alpha_value ** (head_dim / (head_dim - 2))
    params["rope_theta"] = theta
    if options.compress_pos_emb is not None:
        params.update(rope_type="linear", factor=float(options.compress_pos_emb))
    text.rope_parameters = params
    return True


def loaded_facts(model: Any) -> dict[str, Any]:
    """How the model came to be in memory, as the runner's /health reports it: the quantized
    layer classes, where its modules went (a device map), its quantization and RoPE settings."""
    layers = sorted({type(m).__name__ for m in model.modules() if _quantized(type(m))})
    placed: dict[str, int] = {}
    for where in (getattr(model, "hf_device_map", None) or {}).values():
        placed[str(where)] = placed.get(str(where), 0) + 1
    quant = getattr(model.config, "quantization_config", None)
    if quant is not None and not isinstance(quant, dict):
        quant = quant.to_dict()
    text = getattr(model.config, "text_config", None) or model.config
    kept = ("quant_method", "bits", "group_size", "desc_act", "load_in_8bit", "load_in_4bit",
            "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype")  # fmt: skip
    return {
        "quantized_layers": layers,
        "device_map": placed,
        "quantization": {k: quant[k] for k in kept if k in quant} if quant else None,
        "rope": dict(getattr(text, "rope_parameters", None) or {}),
        "dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
    }


QUANTIZED_LAYERS = {"Linear8bitLt", "Linear4bit"}  # bitsandbytes'


def _quantized(layer: type) -> bool:
    return layer.__name__ in QUANTIZED_LAYERS or layer.__module__.startswith("gptqmodel.nn_modules.qlinear")


def gptq_kernels(method: str) -> None:
    """Import gptqmodel, whose kernels run GPTQ and AWQ weights in transformers (torch kernels on
    the CPU); transformers then finds it loaded. Its InternVL definition imports torchvision,
    which this torch may lack: a stand-in serves that import."""
    from modelyard.runners.standins import torchvision_stand_in

    try:
        with torchvision_stand_in():
            import gptqmodel  # noqa: F401
    except ImportError as e:
        raise EngineError(
            f"{method.upper()} weights in transformers need gptqmodel's kernels, which this environment lacks: {e}",
            hint="`modelyard backends install transformers` adds them; or load the model with vllm (`--backend vllm`)",
        ) from e


def gptq_config(path: str, options: Any) -> Any:
    """A GPTQConfig for an AutoGPTQ checkpoint of before quantization_config (its
    quantize_config.json, or the wbits / groupsize / desc_act settings); None for any other."""
    import json
    from pathlib import Path

    from modelyard.formats import hf

    folder = Path(path)
    config = json.loads((folder / "config.json").read_text())
    if config.get("quantization_config"):
        return None
    shards, _ = hf.read_weights(folder)
    tensors = {name: t for shard in shards for name, t in shard.tensors.items()}
    method, facts = hf.quantization_of(folder, config, tensors)
    if method != "gptq":
        return None
    bits = options.wbits or facts.get("bits")
    if bits is None:
        raise EngineError(
            "these GPTQ weights have no quantize config: set wbits (and groupsize, desc_act) in the model's "
            "settings, as the model card gives them"
        )
    from transformers import GPTQConfig

    group = options.groupsize if options.groupsize is not None else facts.get("group_size", 128)
    act = options.desc_act if options.desc_act is not None else facts.get("desc_act", False)
    return GPTQConfig(bits=int(bits), group_size=int(group), desc_act=bool(act))
