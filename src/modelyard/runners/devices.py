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


def quantization_config(kind: str, device: str, dtype: Any) -> Any:
    """A bitsandbytes config for int8 / int4 / nf4, or a clear error where it cannot run."""
    if kind == "none":
        return None
    if device != "cuda":
        raise EngineError(
            f"quantization {kind} needs bitsandbytes and a CUDA GPU; this instance runs on {device}. "
            "Set quantization to none, or run on a CUDA GPU",
        )
    try:
        import bitsandbytes  # noqa: F401
        import transformers
    except ImportError as e:
        raise EngineError(
            f"quantization {kind} needs bitsandbytes: install it into this backend's environment"
        ) from e
    config: Any = transformers.BitsAndBytesConfig
    if kind == "int8":
        return config(load_in_8bit=True)
    return config(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4" if kind == "nf4" else "fp4",
        bnb_4bit_compute_dtype=dtype,
    )
