"""torchvision where it cannot be imported. The registry's torchvision builds for torch 2.13 are
CUDA builds that fail on a CPU torch, and two libraries modelyard runs import a few of its names
for models it never loads: spandrel (LaMa and RestoreFormer, no upscalers) and gptqmodel (its
InternVL definition). While they import, those names come from here: ``normalize`` as torchvision
computes it, ``rotate`` refusing, ``InterpolationMode``. A working torchvision is always used
instead, and nothing else in the process sees the stand-in."""

from __future__ import annotations

import contextlib
import enum
import sys
import types
from collections.abc import Iterator
from typing import Any

from modelyard.errors import Unsupported

NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _normalize(tensor: Any, mean: Any, std: Any, inplace: bool = False) -> Any:
    import torch

    mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t) if inplace else (tensor - mean_t) / std_t


def _rotate(*_args: Any, **_kwargs: Any) -> Any:
    raise Unsupported("this model needs torchvision, which is not installed for this torch build")


@contextlib.contextmanager
def torchvision_stand_in() -> Iterator[None]:
    """torchvision's few names, while a library that asks for them imports."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError, OSError):
        pass
    else:
        yield
        return
    saved = {n: sys.modules.get(n) for n in NAMES}
    package, transforms, functional = (types.ModuleType(n) for n in NAMES)
    functional.__dict__.update(normalize=_normalize, rotate=_rotate, InterpolationMode=InterpolationMode)
    package.__dict__["transforms"], transforms.__dict__["functional"] = transforms, functional
    sys.modules.update(zip(NAMES, (package, transforms, functional), strict=True))
    try:
        yield
    finally:
        for n, module in saved.items():
            if module is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = module
