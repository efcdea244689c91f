"""Ollama's requests and answers, mapped onto OpenAI's (what the engines speak) and back. Pure
functions: no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from modelyard.catalog.records import Model
from modelyard.errors import InvalidRequest
from modelyard.ollama.protocol import ChatIn, GenerateIn, Message

# Ollama's options -> the OpenAI (and llama-server / vLLM) sampling fields
SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# the suffix Ollama's clients add to a name without a tag
LATEST = ":latest"


FOREVER = "2318-08-01T00:00:00Z"  # what Ollama's /api/ps says of a model kept loaded for good


def at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def keep_alive(value: float | str) -> float | None:
    """Seconds a model stays loaded after a request (None: forever, a negative value)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
                raise InvalidRequest(
                    f"keep_alive {value!r} is not a duration", hint="such as 5m, 1h30m, 0 or -1"
                ) from None
            seconds = sum(float(n) * UNITS[u] for n, u in parts)
    return None if seconds < 0 else seconds


def model_name(name: str) -> str:
    """A name as the library knows it: Ollama's clients say ``tiny:latest`` for ``tiny``."""
    return name.removesuffix(LATEST)


def sampling(options: dict[str, Any]) -> dict[str, Any]:
    """Ollama's options as OpenAI fields: num_predict is max_tokens (-1: no limit)."""
    body = {SAMPLING[k]: v for k, v in options.items() if k in SAMPLING and v is not None}
    if isinstance(body.get("stop"), str):
        body["stop"] = [body["stop"]]
    predict = options.get("num_predict")
    if isinstance(predict, int) and predict >= 0:
        body["max_tokens"] = predict
    return body


def response_format(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": fmt}}
    raise InvalidRequest(f"format {fmt!r} is neither json nor a JSON schema")


def _content(message: Message) -> str | list[dict[str, Any]]:
    if not message.images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for image in message.images:
        url = image if image.startswith("data:") else f"data:image/png;base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": call.get("function", {}).get("name", ""),
                    "arguments": _json_text(call.get("function", {}).get("arguments", {})),
                },
            }
            for i, call in enumerate(message.tool_calls)
        ]
    if message.role == "tool" and message.tool_name:
        out["name"] = message.tool_name
    return out


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def chat_body(req: ChatIn, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [_message(m) for m in req.messages], **sampling(req.options)}
    if req.tools:
        body["tools"] = req.tools
    if (fmt := response_format(req.format)) is not None:
        body["response_format"] = fmt
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def generate_body(req: GenerateIn, stream: bool) -> tuple[str, str, dict[str, Any]]:
    """(endpoint, path, body): a raw prompt is a completion; else the model's template applies,
    as a chat with the prompt (and the system text) as messages."""
    body: dict[str, Any] = sampling(req.options)
    if (fmt := response_format(req.format)) is not None:
        body["response_format"] = fmt
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if req.raw:
        if req.images:
            raise InvalidRequest("a raw prompt takes no images", hint="leave raw off to send images")
        body["prompt"] = req.prompt
        if req.suffix:
            body["suffix"] = req.suffix
        return "completions", "/v1/completions", body
    messages = [Message(role="system", content=req.system)] if req.system else []
    messages.append(Message(role="user", content=req.prompt, images=req.images))
    body["messages"] = [_message(m) for m in messages]
    return "chat", "/v1/chat/completions", body


def done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"


def tool_calls(openai_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI's tool calls (arguments as JSON text) as Ollama's (arguments as an object)."""
    if not openai_calls:
        return None
    out = []
    for call in openai_calls:
        fn = call.get("function") or {}
        args = fn.get("arguments") or "{}"
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            parsed = {"arguments": args}
        out.append({"function": {"name": fn.get("name", ""), "arguments": parsed}})
    return out


def timings(started: float, ended: float, usage: dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's counts and durations (nanoseconds) from an OpenAI usage."""
    usage = usage or {}
    total = int((ended - started) * 1e9)
    return {
        "total_duration": total,
        "load_duration": 0,
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "prompt_eval_duration": 0,
        "eval_count": int(usage.get("completion_tokens") or 0),
        "eval_duration": total,
    }


def normalized(vector: list[float]) -> list[float]:
    """Unit length, as Ollama's /api/embed answers."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


# -- the library as Ollama's models --------------------------------------------------------------

SERVED = ("chat", "multimodal", "embedding")


def digest(model: Model) -> str:
    return hashlib.sha256(f"{model.path}:{model.size}:{model.id}".encode()).hexdigest()


def _size(parameters: int | None) -> str:
    if not parameters:
        return ""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.1f}{unit}".replace(".0", "")
    return str(parameters)


def details(model: Model) -> dict[str, Any]:
    family = model.architecture or ""
    return {
        "parent_model": "",
        "format": model.format,
        "family": family,
        "families": [family] if family else None,
        "parameter_size": _size(model.parameters),
        "quantization_level": model.quantization or "",
    }


def modified(model: Model) -> str:
    when = model.updated_at or model.created_at or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat().replace("+00:00", "Z")


def tag(model: Model) -> dict[str, Any]:
    name = model.name + LATEST
    return {
        "name": name,
        "model": name,
        "modified_at": modified(model),
        "size": model.size,
        "digest": digest(model),
        "details": details(model),
    }


def capabilities(model: Model) -> list[str]:
    if model.category == "embedding":
        return ["embedding"]
    caps = ["completion"]
    if model.category == "multimodal":
        caps.append("vision")
    return caps


def show(model: Model, template: str) -> dict[str, Any]:
    arch = model.architecture or "unknown"
    info: dict[str, Any] = {"general.architecture": arch}
    if model.parameters:
        info["general.parameter_count"] = model.parameters
    if model.context_length:
        info[f"{arch}.context_length"] = model.context_length
    return {
        "modelfile": f"# modelyard: {model.name}\nFROM {model.path}\n",
        "parameters": "",
        "template": template,
        "details": details(model),
        "model_info": info,
        "capabilities": capabilities(model),
        "modified_at": modified(model),
    }
