"""Image generation with an upscale step: a request's ``upscale`` names an upscale model, and
each image the image model makes is sent through it before the answer goes back."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from modelyard.gateway.checks import runtime_of

# routes._route: (request, raw, name, endpoint, path, capability=...) -> the engine's answer
Route = Callable[..., Awaitable[Response]]
STEP = ("upscale", "upscale_scale")  # the fields this step takes out of the request


async def generate_then_upscale(request: Request, body: dict[str, Any], path: str, capability: str,
                                route: Route) -> Response:  # fmt: skip
    """The image model's answer (b64_json), each image upscaled, in the format asked for."""
    upscaler, scale = str(body["upscale"]), body.get("upscale_scale")
    wanted = body.get("response_format") or "b64_json"
    asked = {k: v for k, v in body.items() if k not in STEP} | {"response_format": "b64_json"}
    made = await route(
        request, orjson.dumps(asked), str(body["model"]), "images", path, capability=capability
    )
    if made.status_code != 200:
        return made
    answer = orjson.loads(bytes(made.body))
    outputs = runtime_of(request).settings.home / "outputs" / "images"
    for i, item in enumerate(answer.get("data", [])):
        step = {"model": upscaler, "image": f"data:image/png;base64,{item['b64_json']}"}
        if scale is not None:
            step["scale"] = scale
        done = await route(request, orjson.dumps(step), upscaler, "images/upscale", "/v1/images/upscale")
        if done.status_code != 200:
            return done  # the upscaler's own refusal (not loaded, too big, ...)
        image = orjson.loads(bytes(done.body))["data"][0]
        answer["data"][i] = {
            **{k: v for k, v in item.items() if k != "b64_json"},
            "b64_json": image["b64_json"],
        }
        if wanted == "url":
            answer["data"][i] = await asyncio.to_thread(_saved, outputs, image["b64_json"], item)
    answer["upscaled_by"] = upscaler
    return Response(orjson.dumps(answer), media_type="application/json")


def _saved(outputs: Path, b64: str, item: dict[str, Any]) -> dict[str, Any]:
    """The image as a PNG under MODELYARD_HOME/outputs/images, named in the answer as the image
    engine names its files (url, path)."""
    outputs.mkdir(parents=True, exist_ok=True)
    path = outputs / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.png"
    path.write_bytes(base64.b64decode(b64))
    rest = {k: v for k, v in item.items() if k not in ("b64_json", "url", "path")}
    return {**rest, "url": path.as_uri(), "path": str(path)}
