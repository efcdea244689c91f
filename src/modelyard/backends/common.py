"""Option types shared by the Python backends."""

from __future__ import annotations

from typing import Literal

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "float32", "float16", "bfloat16"]
