"""diffusers image generation: text-to-image and image-to-image, with the library's components
(a VAE, CLIP-L / CLIP-G / T5-XXL text encoders) swapped in and several LoRAs at once."""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from modelyard.backends.diffusers import DiffusersOptions
from modelyard.errors import EngineError, InvalidRequest
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.media import load_image
from modelyard.runners.requests import ImageBody, ImageEditBody, VideoBody

log = logging.getLogger(__name__)

# pipeline attribute -> component role; the text encoders by the slot each pipeline family uses
ROLE_SLOTS = {
    "sd_official": {
        "vae": "vae",
        "clip_l": "text_encoder",
        "clip_g": "text_encoder_2",
        "t5xxl": "text_encoder_3",
    },
    "flux": {"vae": "vae", "clip_l": "text_encoder", "t5xxl": "text_encoder_2"},
    "video": {"vae": "vae", "t5xxl": "text_encoder"},
}
MAX_SIDE = 4096


@dataclass(frozen=True)
class LoraSpec:
    name: str
    path: str  # a LoRA file, or a folder of them (each one is loaded)
    weight: float = 1.0


class ImageGenerator:
    def __init__(
        self,
        path: str,
        options: DiffusersOptions,
        *,
        template: str,
        capabilities: list[str],
        components: dict[str, str],
        loras: list[LoraSpec],
        outputs: Path,
    ) -> None:
        diffusers: Any = importlib.import_module("diffusers")  # untyped: its calls stay Any

        self.device = device_of(options.device)
        self.dtype = dtype_of(options.precision, self.device)
        self.options = options
        self.capabilities = set(capabilities)
        self.outputs = outputs
        source = Path(path)
        if source.is_dir() and template == "video":
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                path, torch_dtype=self.dtype, local_files_only=True
            )
        elif source.is_dir():
            try:
                pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
                    path, torch_dtype=self.dtype, local_files_only=True
                )
            except ValueError:  # no text-to-image class for it (video pipelines): the generic loader
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    path, torch_dtype=self.dtype, local_files_only=True
                )
        else:
            pipe = self._single_file(diffusers, path, template, components)
        if source.is_dir():
            self._swap_components(pipe, template, components, source)
        self.lora_names = self._load_loras(pipe, loras)
        if options.attention_slicing:
            pipe.enable_attention_slicing()
        if options.cpu_offload and self.device == "cuda":
            pipe.enable_model_cpu_offload()
        else:
            pipe = pipe.to(self.device)
        self.pipe = pipe
        self.img2img: Any = None
        if "image-to-image" in self.capabilities:
            try:
                self.img2img = diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
            except ValueError:
                log.warning("%s has no image-to-image pipeline: /v1/images/edits is off", type(pipe).__name__)
        self._lock = asyncio.Lock()  # one generation at a time; the gateway queues the rest

    def _single_file(self, diffusers: Any, path: str, template: str, components: dict[str, str]) -> Any:
        """A single-file checkpoint takes its pipeline's configuration from a local diffusers
        folder (the `config` option: hubs are not asked), and the parts it lacks (many FLUX files
        hold the transformer only) from the model's components."""
        classes = {"sd_official": "StableDiffusionPipeline", "flux": "FluxPipeline", "video": "WanPipeline"}
        cls = getattr(diffusers, classes.get(template, "StableDiffusionPipeline"))
        config = self.options.config
        if config is None or not Path(config).is_dir():
            raise EngineError(
                f"{Path(path).name} is a single-file checkpoint, which needs its pipeline's configuration: "
                "set the model's `config` option to a local diffusers folder of the same architecture",
            )
        slots = ROLE_SLOTS.get(template, ROLE_SLOTS["sd_official"])
        parts = {
            slots[role]: self._component(role, Path(p), Path(config))
            for role, p in components.items()
            if role in slots
        }
        try:
            return cls.from_single_file(
                path, config=config, torch_dtype=self.dtype, local_files_only=True, **parts
            )
        except Exception as e:
            missing = "appear to be missing in the checkpoint" in str(e)
            raise EngineError(
                f"cannot load the single-file checkpoint {Path(path).name}: {str(e).splitlines()[0]}"
                + (
                    ". Give the model the parts its file lacks: `modelyard component set NAME vae|clip_l|clip_g|t5xxl PATH`"
                    if missing
                    else ""
                ),
            ) from e

    def _swap_components(self, pipe: Any, template: str, components: dict[str, str], source: Path) -> None:
        slots = ROLE_SLOTS.get(template, ROLE_SLOTS["sd_official"])
        for role, path in components.items():
            slot = slots.get(role)
            if slot is None or not hasattr(pipe, slot):
                raise EngineError(f"this {type(pipe).__name__} has no place for a {role} component")
            loaded = self._component(role, Path(path), source)
            setattr(pipe, slot, loaded)
            pipe.register_modules(**{slot: loaded})
            log.info("component %s (%s) from %s", role, slot, path)

    def _component(self, role: str, path: Path, source: Path) -> Any:
        """A VAE (see _vae), or a text encoder as a transformers folder (its class from config.json)."""
        if role == "vae":
            diffusers: Any = importlib.import_module("diffusers")
            return self._vae(diffusers.AutoencoderKL, path, source)
        if not path.is_dir():
            raise EngineError(
                f"the {role} component {path.name} is a single file; text encoders are taken as "
                "transformers folders (config.json + weights)",
            )
        transformers: Any = importlib.import_module("transformers")
        config = orjson.loads((path / "config.json").read_bytes())
        architecture = (config.get("architectures") or ["AutoModel"])[0]
        cls = getattr(transformers, architecture, transformers.AutoModel)
        return cls.from_pretrained(str(path), torch_dtype=self.dtype, local_files_only=True)

    def _vae(self, vae: Any, path: Path, source: Path) -> Any:
        """A VAE folder; a diffusers-format file with its config.json beside it; else a
        single-file VAE in the architecture of the model's own VAE."""
        common = {"torch_dtype": self.dtype, "local_files_only": True}
        if path.is_dir():
            return vae.from_pretrained(str(path), **common)
        if (path.parent / "config.json").exists():
            return vae.from_pretrained(str(path.parent), **common)
        if (source / "vae" / "config.json").exists():
            return vae.from_single_file(str(path), config=str(source), subfolder="vae", **common)
        return vae.from_single_file(str(path), **common)

    @staticmethod
    def _load_loras(pipe: Any, loras: list[LoraSpec]) -> list[str]:
        """Each LoRA file (a folder gives all of its files), under its own adapter name."""
        names, weights = [], []
        for spec in loras:
            source = Path(spec.path)
            files = sorted(source.glob("*.safetensors")) if source.is_dir() else [source]
            if not files:
                raise EngineError(f"no .safetensors LoRA files in {source}")
            for i, f in enumerate(files):
                name = spec.name if len(files) == 1 else f"{spec.name}-{i}"
                pipe.load_lora_weights(str(f.parent), weight_name=f.name, adapter_name=name)
                names.append(name)
                weights.append(spec.weight)
        if names:
            pipe.set_adapters(names, adapter_weights=weights)
        return names

    # -- requests ----------------------------------------------------------------------------

    def _params(self, body: ImageBody) -> dict[str, Any]:
        params: dict[str, Any] = {
            "prompt": body.prompt,
            "num_images_per_prompt": body.n,
            "num_inference_steps": body.steps or self.options.steps,
            "guidance_scale": self.options.guidance_scale
            if body.guidance_scale is None
            else body.guidance_scale,
        }
        if body.negative_prompt:
            params["negative_prompt"] = body.negative_prompt
        size = body.size
        if size and size != "auto":
            try:
                width, height = (int(x) for x in size.lower().split("x"))
            except ValueError:
                raise InvalidRequest("'size' must be WIDTHxHEIGHT, such as 512x512", param="size") from None
            if not (8 <= width <= MAX_SIDE and 8 <= height <= MAX_SIDE) or width % 8 or height % 8:
                raise InvalidRequest("'size' sides must be multiples of 8 up to 4096", param="size")
            params["width"], params["height"] = width, height
        return params

    def _generator(self, body: ImageBody) -> Any:
        import torch

        return None if body.seed is None else torch.Generator(device="cpu").manual_seed(body.seed)

    async def generate(self, body: ImageBody, name: str) -> dict[str, Any]:
        if "text-to-image" not in self.capabilities:
            hint = "; it makes videos: /v1/videos/generations" if "video" in self.capabilities else ""
            raise InvalidRequest(f"{name} is not tagged text-to-image{hint}")
        params = self._params(body)
        params["generator"] = self._generator(body)
        async with self._lock:
            images = await asyncio.to_thread(lambda: self.pipe(**params).images)
        return self._answer(images, body)

    async def edit(self, body: ImageEditBody, name: str) -> dict[str, Any]:
        if self.img2img is None:
            raise InvalidRequest(f"{name} is not tagged image-to-image: it does not serve /v1/images/edits")
        params = self._params(body)
        image = load_image(body.image)
        params.update(image=image, strength=body.strength, generator=self._generator(body))
        if "width" not in params:
            params["width"], params["height"] = image.size[0] // 8 * 8, image.size[1] // 8 * 8
        image_pipe = self.img2img
        async with self._lock:
            images = await asyncio.to_thread(lambda: image_pipe(**params).images)
        return self._answer(images, body)

    async def video(self, body: VideoBody, name: str) -> dict[str, Any]:
        """A clip from a prompt, as an animated WebP (b64_json, or a file with url)."""
        if "video" not in self.capabilities:
            raise InvalidRequest(f"{name} is not tagged video")
        params = self._params(body)
        params.pop("num_images_per_prompt")
        frames, fps = body.frames, body.fps
        params.update(num_frames=frames, generator=self._generator(body), output_type="pil")
        pipe = self.pipe
        async with self._lock:
            clip = await asyncio.to_thread(lambda: pipe(**params).frames[0])
        buf = io.BytesIO()
        clip[0].save(
            buf,
            format="WEBP",
            save_all=True,
            append_images=clip[1:],
            duration=1000 // fps,
            loop=0,
            quality=90,
        )
        item = self._encoded(buf.getvalue(), body, "webp")
        item.update(mime_type="image/webp", frames=len(clip), fps=fps)
        return {"created": int(time.time()), "data": [item]}

    def _answer(self, images: list[Any], body: ImageBody) -> dict[str, Any]:
        data = []
        for img in images:
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            data.append(self._encoded(buf.getvalue(), body, "png"))
        return {"created": int(time.time()), "data": data}

    def _encoded(self, raw: bytes, body: ImageBody, suffix: str) -> dict[str, Any]:
        """b64_json, or a file under MODELYARD_HOME/outputs/images named in the answer (url)."""
        if body.response_format == "b64_json":
            return {"b64_json": base64.b64encode(raw).decode()}
        self.outputs.mkdir(parents=True, exist_ok=True)
        path = self.outputs / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.{suffix}"
        path.write_bytes(raw)
        return {"url": path.as_uri(), "path": str(path)}
