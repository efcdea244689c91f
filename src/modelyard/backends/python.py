"""The Python backends (sentence-transformers, transformers, diffusers) run modelyard's own
runner: which task a model gets, which endpoints it serves, and the command that starts it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelyard.backends.base import EngineSpec
from modelyard.backends.environments import Interpreter
from modelyard.catalog.records import Model
from modelyard.errors import InvalidSettings, Unsupported

PYTHON_BACKENDS = ("sentence-transformers", "transformers", "diffusers")

# category -> (runner task, OpenAI endpoints)
TASKS: dict[str, tuple[str, frozenset[str]]] = {
    "embedding": ("embed", frozenset({"embeddings"})),
    "rerank": ("rerank", frozenset({"rerank"})),
    "classification": ("classify", frozenset({"classify"})),
    "chat": ("generate", frozenset({"chat", "completions"})),
    "multimodal": ("vision", frozenset({"chat", "completions"})),
    "image": ("image", frozenset({"images"})),
}
ENCODER_SLOTS = 256  # requests one encoder instance takes at once: its batcher groups them


def task_of(model: Model) -> tuple[str, frozenset[str]]:
    if model.category not in TASKS:
        raise Unsupported(
            f"{model.name!r} is a {model.category} model; the Python backends do not serve that yet",
            hint="convert it to GGUF to run it on llama.cpp",
        )
    return TASKS[model.category]


def adapters_of(model: Model, options: dict[str, Any], adapter: str | None) -> list[dict[str, Any]]:
    """The PEFT adapters to apply: the one asked for (base:adapter), else the options'
    peft_adapters, each a library adapter of this model or a folder, with a weight."""
    if adapter is not None:
        found = model.adapter(adapter)
        assert found is not None
        return [{"name": found.name, "path": found.path, "weight": 1.0}]
    chosen = []
    for i, item in enumerate(options.get("peft_adapters") or []):
        if item.get("name"):
            found = model.adapter(item["name"])
            if found is None:
                raise InvalidSettings(
                    f"the settings name {item['name']!r}, which is not an adapter of {model.name!r}",
                    hint=f"`modelyard lora ls {model.name}` lists them",
                )
            name, path = found.name, found.path
        else:
            path = str(item["path"])
            if not Path(path).exists():
                raise InvalidSettings(f"no such adapter file or folder {path}")
            name = f"adapter-{i}"
        chosen.append({"name": name, "path": path, "weight": float(item.get("weight", 1.0))})
    return chosen


def loras_of(model: Model, options: dict[str, Any], adapter: str | None) -> list[dict[str, Any]]:
    """The SD LoRAs to apply: the one asked for, else the options' loras (each a library adapter
    or a file / folder, with a weight)."""
    items = options.get("loras") or []
    return adapters_of(model, {"peft_adapters": items}, adapter)


def engine(
    python: Interpreter,
    backend: str,
    model: Model,
    options: dict[str, Any],
    adapter: str | None,
    host: str,
    port: int,
    outputs: Path,
) -> EngineSpec:
    task, endpoints = task_of(model)
    runner_options = {k: v for k, v in options.items() if k not in ("peft_adapters", "loras")}
    argv = [
        python.python,
        "-m",
        "modelyard.runners",
        "--task",
        task,
        "--model",
        model.path,
        "--name",
        model.name,
        "--host",
        host,
        "--port",
        str(port),
        "--options",
        json.dumps(runner_options),
    ]
    if backend == "transformers" and task in ("generate", "vision"):
        argv += ["--adapters", json.dumps(adapters_of(model, options, adapter))]
    if task == "image":
        argv += [
            "--adapters",
            json.dumps(loras_of(model, options, adapter)),
            "--template",
            model.template or "sd_official",
            "--capabilities",
            json.dumps(model.capabilities or ["text-to-image"]),
            "--outputs",
            str(outputs),
        ]
    if model.components:
        argv += ["--components", json.dumps({c.role: c.path for c in model.components})]
    env = {
        **python.env,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    slots = 1 if task in ("generate", "image") else ENCODER_SLOTS
    return EngineSpec(
        argv=argv,
        env=env,
        health_path="/health",
        slots=slots,
        endpoints=endpoints,
        runtime=f"modelyard runner ({backend}, {'server python' if python.where == 'server' else python.where})",
    )
