"""Forced tool calls on every engine: a chat request whose ``tool_choice`` is "required" or names a
function must answer with valid calls, and no engine promises that its own way (llama-server lets a
model write text before a call; vLLM wants the family's tool-call parser; a runner model may not
know the format). The gateway asks the engine for JSON that a schema constrains to the calls
instead (``response_format`` json_schema: grammars on llama.cpp, xgrammar on vLLM and the runner)
and turns the JSON back into ``tool_calls``: never into ``content``. Pure: no HTTP here."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from modelyard.errors import EngineError, InvalidRequest

MAX_CALLS = 8  # parallel calls in one forced answer: a small model would repeat one forever


@dataclass(frozen=True)
class Forced:
    """What a forced request asks: the schema the answer follows, and whether it is a list of
    calls (parallel) or one."""

    schema: dict[str, Any]
    parallel: bool
    names: frozenset[str]


def _functions(tools: Any) -> dict[str, dict[str, Any]]:
    """The request's functions by name."""
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("tool_choice needs tools: a list of functions", param="tools")
    found: dict[str, dict[str, Any]] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name or tool.get("type", "function") != "function":
            raise InvalidRequest(
                "each tool must be {type: function, function: {name, parameters}}", param="tools"
            )
        found[name] = function  # type: ignore[assignment]
    return found


def _call_schema(name: str, function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        parameters = {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"type": "string", "const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def forced(body: dict[str, Any]) -> Forced | None:
    """The constraint a chat request's ``tool_choice`` forces; None where it forces nothing
    (absent, "auto", "none")."""
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none"):
        return None
    functions = _functions(body.get("tools"))
    if choice == "required":
        chosen = functions
        parallel = body.get("parallel_tool_calls") is not False
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in functions:
            raise InvalidRequest(
                f"tool_choice names {name!r}, which is not among the tools", param="tool_choice"
            )
        chosen, parallel = {name: functions[name]}, False
    else:
        raise InvalidRequest(
            'tool_choice must be "auto", "none", "required" or {type: function, function: {name}}',
            param="tool_choice",
        )
    calls = [_call_schema(n, f) for n, f in chosen.items()]
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    schema = {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_CALLS} if parallel else one
    return Forced(schema, parallel, frozenset(chosen))


def constrained(body: dict[str, Any], force: Forced) -> dict[str, Any]:
    """The request the engine gets: the tools still shown to the model (its template writes
    them into the prompt) but none called its own way ("none"), the answer constrained to the
    calls' JSON, and not streamed (the gateway streams the calls itself)."""
    out = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    out["tool_choice"] = "none"
    out["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "tool_calls", "schema": force.schema, "strict": True},
    }
    return out


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


def answer_with_calls(answer: dict[str, Any], force: Forced) -> dict[str, Any]:
    """The engine's answer with its JSON turned into ``tool_calls`` (or the calls it parsed
    itself kept); EngineError when it holds no valid call."""
    choices = answer.get("choices") or [{}]
    message = dict(choices[0].get("message") or {})
    calls = message.get("tool_calls")
    if not calls and choices[0].get("finish_reason") == "length":
        raise InvalidRequest(
            "max_tokens ran out before the tool call was complete: raise max_tokens", param="max_tokens"
        )
    calls = calls or _calls_of(message.get("content"), force)
    message.update(role="assistant", content=None, tool_calls=calls)
    choice = {**choices[0], "message": message, "finish_reason": "tool_calls"}
    return {**answer, "choices": [choice]}


def _json(content: Any) -> Any:
    """The JSON of an answer; raw control characters in its strings are taken (xgrammar lets
    them into a string with a maxLength), and escaped again when the arguments are written out."""
    text = content if isinstance(content, str) else ""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text, strict=False)


def _calls_of(content: Any, force: Forced) -> list[dict[str, Any]]:
    try:
        parsed = _json(content)
    except ValueError:
        raise EngineError(
            "the engine did not follow the tool-call schema (its answer is not JSON)",
            hint="its engine may not take response_format json_schema; try tool_choice auto",
        ) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in force.names or not isinstance(item.get("arguments"), dict):
            raise EngineError("the engine did not follow the tool-call schema", hint="try tool_choice auto")
        arguments = orjson.dumps(item["arguments"]).decode()
        calls.append(
            {"id": call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    if not calls:
        raise EngineError("the engine answered no tool call")
    return calls


def stream_chunks(answer: dict[str, Any], usage: bool) -> list[dict[str, Any]]:
    """A finished answer with tool calls as OpenAI's stream chunks: the role, one delta per call
    (its whole arguments), the finish reason, and the usage when asked."""
    base = {k: answer.get(k) for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    message = answer["choices"][0]["message"]

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

    chunks = [chunk({"role": "assistant", "content": None})]
    chunks += [chunk({"tool_calls": [{"index": i, **call}]}) for i, call in enumerate(message["tool_calls"])]
    chunks.append(chunk({}, "tool_calls"))
    if usage and answer.get("usage"):
        chunks.append({**base, "choices": [], "usage": answer["usage"]})
    return chunks


def stream_of(answer: dict[str, Any], usage: bool) -> bytes:
    """The same as server-sent events, ending with [DONE]."""
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in stream_chunks(answer, usage)]
    return b"".join(events) + b"data: [DONE]\n\n"
