"""A model-compose component of type model, as its files write it (the model-compose chapter):
the model and how it loads (which become a library entry, its settings and adapters: a
ModelSpec), and what one run asks of it (``text``, ``messages``, ``params``, with ``${input.*}``
expressions) and gives back (``output``, with ``${result.*}``).

A run is one request to the model's engine through the gateway: ``Call`` says which endpoint
and body; the engine's answer gives the task's ``result`` (the text made; a label and a score;
an embedding; a caption; an image as a PNG data URL; the faces found), which ``output`` maps
(the whole result when it has no output)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.compose import expressions
from modelyard.compose.names import Id
from modelyard.deployments.spec import DRIVERS, TASKS, AdapterSpec, ModelSpec, Source, source_of
from modelyard.errors import InvalidSpec, Unsupported
from modelyard.validation import describe

# the tasks a run can ask of a model, and the gateway endpoint each asks
RUNS = {
    "text-generation": "completions",
    "chat-completion": "chat",
    "text-classification": "classify",
    "text-embedding": "embeddings",
    "image-to-text": "images/captions",
    "image-generation": "images",
    "image-upscale": "images/upscale",
    "face-embedding": "embeddings",
}
PATHS = {
    "completions": "/v1/completions",
    "chat": "/v1/chat/completions",
    "classify": "/v1/classify",
    "embeddings": "/v1/embeddings",
    "images/captions": "/v1/images/captions",
    "images": "/v1/images/generations",
    "images/upscale": "/v1/images/upscale",
}
# model-compose's params -> the gateway's fields, per kind of task (repetition_penalty: see call)
TEXT_PARAMS = {
    "max_output_length": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
    "stop": "stop",
}
PARAMS = {
    "completions": TEXT_PARAMS,
    "chat": TEXT_PARAMS,
    "classify": {},
    "embeddings": {},
    "images/captions": {"max_output_length": "max_tokens"},
    "images": {
        "width": "width", "height": "height", "num_inference_steps": "steps",
        "guidance_scale": "guidance_scale", "negative_prompt": "negative_prompt", "seed": "seed",
    },
    "images/upscale": {"scale": "scale", "tile_size": "tile_size"},
}  # fmt: skip
NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ModelComponent(BaseModel):
    """``component:`` of ``type: model``, every field as model-compose writes it."""

    model_config = ConfigDict(extra="forbid")

    id: Id | None = Field(None, description="its name in a file of several components")
    type: Literal["model"]
    task: str = Field(description=f"one of {', '.join(TASKS)}")
    model: str | Source = Field(description="a hub repo, a local path, or a mapping with its provider")
    driver: str | None = None
    architecture: str | None = None
    device: str | None = None
    device_mode: Literal["single", "auto"] | None = Field(
        None, description="auto: spread over the GPUs and the CPU (transformers' auto_devices)"
    )
    precision: str | None = None
    quantization: str | None = None
    batch_size: int | None = Field(None, ge=1)
    low_cpu_mem_usage: bool | None = None
    peft_adapters: list[AdapterSpec] | None = None
    text: Any = Field(None, description="the text it is given (generation, classification, embedding)")
    messages: Any = Field(None, description="the messages it is given (chat-completion)")
    prompt: Any = None
    image: Any = None
    params: dict[str, Any] = Field(default_factory=dict, description="generation parameters")
    output: Any = Field(None, description="what a run gives, from ${result.*}; absent: the whole result")

    @model_validator(mode="after")
    def _readable(self) -> ModelComponent:
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one modelyard runs: {', '.join(TASKS)}")
        if self.driver is not None and self.driver not in DRIVERS:
            raise ValueError(f"driver: {self.driver!r} is not one modelyard has: {', '.join(DRIVERS)}")
        expressions.readable(
            {f: getattr(self, f) for f in ("text", "messages", "prompt", "image", "params", "output")}
        )
        return self

    def name(self) -> str:
        """Its library name: its id, else its model's (the repo's or the file's own name)."""
        if self.id:
            return self.id
        source = source_of(self.model)
        where = source.path or source.repository or source.url or "model"
        base = os.path.basename(where.rstrip("/")) or "model"
        if source.path and os.path.splitext(base)[1] in (".gguf", ".safetensors", ".bin", ".pt", ".onnx"):
            base = os.path.splitext(base)[0]
        return NAME.sub("-", base).strip("-.") or "model"

    def spec(self, name: str) -> ModelSpec:
        """The library entry, settings and adapters it asks for."""
        settings = {"auto_devices": True} if self.device_mode == "auto" else None
        try:
            return ModelSpec(
                name=name, model=self.model, task=self.task, driver=self.driver, device=self.device,
                precision=self.precision, quantization=self.quantization, batch_size=self.batch_size,
                low_cpu_mem_usage=self.low_cpu_mem_usage, peft_adapters=self.peft_adapters, settings=settings,
            )  # fmt: skip
        except ValidationError as e:
            raise InvalidSpec(f"component {self.name()!r}: {describe(e.errors())}") from None

    def endpoint(self) -> str:
        """The gateway endpoint a run asks (Unsupported for a task no run takes)."""
        endpoint = RUNS.get(self.task)
        if endpoint is None:
            raise Unsupported(
                f"a component of task {self.task} cannot be run", hint=f"runs take {', '.join(RUNS)}"
            )
        return endpoint

    def call(self, given: Mapping[str, Any], served: str, backend: str) -> Call:
        """The request a run with the input ``given`` makes of the model (``served``: its name
        at the gateway; ``backend``: the one that serves it)."""
        endpoint = self.endpoint()
        scope = {"input": dict(given), "env": os.environ}
        body: dict[str, Any] = {"model": served}
        if endpoint == "chat":
            body["messages"] = _required(self.messages, "messages", scope)
        elif endpoint == "images":
            body["prompt"] = _required(self.prompt if self.prompt is not None else self.text, "prompt", scope)
        elif endpoint in ("images/captions", "images/upscale") or self.task == "face-embedding":
            image = _required(self.image, "image", scope)
            body["input" if endpoint == "embeddings" else "image"] = image
            if endpoint == "images/captions" and self.prompt is not None:
                body["prompt"] = expressions.render(self.prompt, scope)
        else:
            text = _required(self.text if self.text is not None else self.prompt, "text", scope)
            body["prompt" if endpoint == "completions" else "input"] = text
        known = PARAMS[endpoint] if self.task != "face-embedding" else {}
        for name, value in expressions.render(self.params, scope).items():
            if name not in known:
                raise Unsupported(
                    f"params.{name} is not a parameter of {self.task} here",
                    hint=", ".join(known) or "it takes none",
                )
            field = known[name]
            if field == "repetition_penalty" and backend in ("llama.cpp", "llama-cpp-python"):
                field = "repeat_penalty"  # llama.cpp's name for it
            body[field] = value
        if "width" in body or "height" in body:  # an image's size, as the images API writes it
            width, height = body.pop("width", None), body.pop("height", None)
            body["size"] = f"{width or height}x{height or width}"
        return Call(endpoint, PATHS[endpoint], body)

    def result(self, answer: dict[str, Any]) -> Any:
        """The task's result from the engine's answer (the endpoint's shape): the text made;
        a label and a score; an embedding; an image (a PNG data URL); the faces found."""
        endpoint = RUNS[self.task]
        if endpoint == "completions":
            return answer["choices"][0]["text"]
        if endpoint == "chat":
            return answer["choices"][0]["message"].get("content") or ""
        data = answer["data"]
        if self.task == "face-embedding":
            return [{k: face[k] for k in ("embedding", "bbox", "landmarks", "score")} for face in data]
        (first, *_) = data
        if endpoint == "classify":
            return {"label": first["label"], "score": first["score"]}
        if endpoint == "images/captions":
            return first["caption"]
        if endpoint in ("images", "images/upscale"):
            return f"data:image/png;base64,{first['b64_json']}"
        return {"embedding": first["embedding"]}

    def output_of(self, result: Any, given: Mapping[str, Any]) -> Any:
        """What the run gives: ``output`` with ``${result.*}`` filled, else the result."""
        if self.output is None:
            return result
        return expressions.render(self.output, {"result": result, "input": dict(given), "env": os.environ})


@dataclass(frozen=True)
class Call:
    """One request to the model's engine: the endpoint admitted, its path and body."""

    endpoint: str
    path: str
    body: dict[str, Any]


def _required(value: Any, field: str, scope: Mapping[str, Any]) -> Any:
    """``value`` filled from ``scope``; a component that maps none reads ``${input.FIELD}``."""
    return expressions.render(value if value is not None else f"${{input.{field}}}", scope)
