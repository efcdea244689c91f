"""Upscaling: single-image super-resolution checkpoints (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT,
SPAN and the rest spandrel knows) loaded through spandrel. Big images run in overlapping tiles
(the ``tile_size`` option, or the request's), each tile's border dropped, so the seams match the
whole-image result; a scale other than the model's own resizes its output (Lanczos)."""

from __future__ import annotations

import asyncio
import base64
import io
import math
import time
from typing import Any

from modelyard.backends.spandrel import SpandrelOptions
from modelyard.errors import InvalidRequest, Unsupported
from modelyard.runners import compute
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.media import load_image
from modelyard.runners.requests import UpscaleBody
from modelyard.runners.standins import torchvision_stand_in

OVERLAP = 32  # input pixels each tile shares with its neighbours (more than the nets' reach)
MAX_PIXELS = 4096 * 4096  # the largest output an answer may hold


class Upscaler:
    def __init__(self, path: str, options: SpandrelOptions) -> None:
        import torch

        with torchvision_stand_in():
            from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

        self.device = device_of(options.device)
        try:
            descriptor = ModelLoader(device=self.device).load_from_file(path)
        except UnsupportedModelError as e:
            raise Unsupported(f"spandrel knows no architecture for these weights: {e}") from None
        if not isinstance(descriptor, ImageModelDescriptor):
            raise Unsupported(f"{descriptor.architecture.name} is not an image-to-image model")
        if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
            raise Unsupported(
                f"this {descriptor.architecture.name} takes {descriptor.input_channels} channels and makes "
                f"{descriptor.output_channels}: modelyard sends and answers RGB images"
            )
        dtype = dtype_of(options.precision, self.device)
        if dtype == torch.float16 and descriptor.supports_half:
            descriptor.half()
        elif dtype == torch.bfloat16 and descriptor.supports_bfloat16:
            descriptor.bfloat16()
        self.model: Any = descriptor.eval()
        self.dtype = next(descriptor.model.parameters()).dtype
        self.scale: int = descriptor.scale
        self.tile = options.tile_size
        self._torch = torch
        self.facts = {
            "task": "upscale",
            "architecture": descriptor.architecture.name,
            "scale": self.scale,
            "purpose": descriptor.purpose,
            "channels": descriptor.input_channels,
        }

    # -- the model -------------------------------------------------------------------------------

    def run(self, image: Any, tile: int) -> Any:
        """The model's output for a PIL image (RGB), as a PIL image at the model's scale."""
        import numpy as np
        from PIL import Image

        torch = self._torch
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            out = self._tiled(pixels, tile) if tile and max(pixels.shape[-2:]) > tile else self._pass(pixels)
        array = (out[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        return Image.fromarray(array, "RGB")

    def _pass(self, pixels: Any) -> Any:
        return self.model(pixels.to(self.device, self.dtype)).float().cpu()

    def _tiled(self, pixels: Any, tile: int) -> Any:
        """The output tile by tile: each tile runs with OVERLAP more pixels on every side, which
        are cut off its output again."""
        _, c, h, w = pixels.shape
        s = self.scale
        out = self._torch.zeros((1, c, h * s, w * s))
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                bottom, right = min(top + tile, h), min(left + tile, w)
                y0, x0 = max(top - OVERLAP, 0), max(left - OVERLAP, 0)
                y1, x1 = min(bottom + OVERLAP, h), min(right + OVERLAP, w)
                done = self._pass(pixels[:, :, y0:y1, x0:x1])
                inner = done[:, :, (top - y0) * s : (bottom - y0) * s, (left - x0) * s : (right - x0) * s]
                out[:, :, top * s : bottom * s, left * s : right * s] = inner
        return out

    def upscaled(self, image: Any, scale: float | None, tile: int) -> Any:
        from PIL import Image

        wanted = scale or self.scale
        w, h = image.size
        size = (max(1, round(w * wanted)), max(1, round(h * wanted)))
        if size[0] * size[1] > MAX_PIXELS:
            side = int(math.sqrt(MAX_PIXELS))
            raise InvalidRequest(
                f"the result would be {size[0]}x{size[1]}: at most {side}x{side} pixels; ask a smaller scale",
                param="scale",
            )
        out = self.run(image, tile)
        return out if out.size == size else out.resize(size, Image.Resampling.LANCZOS)

    # -- the route -------------------------------------------------------------------------------

    async def upscale(self, body: UpscaleBody, name: str) -> dict[str, Any]:
        images = await asyncio.to_thread(lambda: [load_image(i) for i in body.images()])
        tile = self.tile if body.tile_size is None else body.tile_size
        data = []
        for image in images:
            out = await compute.run(self.upscaled, image, body.scale, tile)
            encoded = await asyncio.to_thread(_png, out)
            data.append({"b64_json": encoded, "width": out.width, "height": out.height})
        return {"created": int(time.time()), "model": name, "scale": body.scale or self.scale, "data": data}


def _png(image: Any) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()
