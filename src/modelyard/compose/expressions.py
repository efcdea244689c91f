"""model-compose's ``${...}`` expressions: ``${input.text as text}``, ``${result.label}``,
``${jobs.embed-query.output.query_vector}``, ``${input.temperature as number | 0.7}``,
``${response[].choices[0].delta.content}``.

An expression names a source (``input``, ``result``, ``response``, ``jobs``, ``env``), then a
path of keys (``.name``) and indexes (``[0]``, ``[]`` for each item of a list), an optional type
(``as text``, ``number``, ``integer``, ``boolean``, ``object``, ``list``, ``image``), and an
optional default after ``|``. A value that is one whole expression keeps its type (a vector
stays a list); an expression inside other text is written into it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard.errors import InvalidInput

SOURCES = ("input", "result", "response", "jobs", "env")
TYPES = ("text", "number", "integer", "boolean", "object", "list", "image", "json")
EXPRESSION = re.compile(r"\$\{([^}]*)\}")
WHOLE = re.compile(
    r"""\s*(?P<path>[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d*\])*)
        (?:\s+as\s+(?P<type>[a-z]+))?
        (?:\s*\|\s*(?P<default>.*?))?\s*$""",
    re.VERBOSE,
)
STEP = re.compile(r"\.([\w-]+)|\[(\d*)\]")
MISSING = object()


class ExpressionError(InvalidInput):
    """An expression that cannot be read, or that names what is not there."""


@dataclass(frozen=True)
class Expression:
    source: str
    steps: tuple[str | int | None, ...]  # a key, an index, or None: each item of a list
    type: str | None
    default: str | None
    text: str

    def value(self, scope: Mapping[str, Any]) -> Any:
        """The expression's value in ``scope`` (source -> its value)."""
        found = _walk(scope.get(self.source, MISSING), self.steps)
        if found is MISSING or found is None:
            if self.default is None:
                raise ExpressionError(
                    f"${{{self.text}}}: nothing is there", hint=_hint(self.source, self.steps)
                )
            found = _literal(self.default)
        return converted(found, self.type, self.text)


def parse(text: str) -> Expression:
    """One expression's inside (what is between ``${`` and ``}``)."""
    m = WHOLE.fullmatch(text)
    if m is None:
        raise ExpressionError(
            f"${{{text}}} is not an expression", hint="write ${input.name}, ${result.field}"
        )
    path = m.group("path")
    source = re.match(r"[A-Za-z_][\w-]*", path)
    assert source is not None
    name = source.group(0)
    if name not in SOURCES:
        raise ExpressionError(f"${{{text}}}: {name!r} is no source", hint=f"one of {', '.join(SOURCES)}")
    steps: list[str | int | None] = []
    for key, index in STEP.findall(path[len(name) :]):
        steps.append(key if key else (int(index) if index else None))
    kind = m.group("type")
    if kind is not None and kind not in TYPES:
        raise ExpressionError(f"${{{text}}}: no type {kind!r}", hint=f"one of {', '.join(TYPES)}")
    return Expression(name, tuple(steps), kind, m.group("default"), text.strip())


def expressions(value: Any) -> list[Expression]:
    """Every expression in ``value`` (a string, or lists and mappings of them), checked."""
    if isinstance(value, str):
        return [parse(m.group(1)) for m in EXPRESSION.finditer(value)]
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in expressions(v)]
    if isinstance(value, list):
        return [e for v in value for e in expressions(v)]
    return []


def readable(fields: Mapping[str, Any]) -> None:
    """ValueError (for a validator) naming the first of ``fields`` (a name -> its value) whose
    expressions cannot be read."""
    for name, value in fields.items():
        try:
            expressions(value)
        except InvalidInput as e:
            raise ValueError(f"{name}: {e.message}") from None


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with its expressions filled from ``scope``: a string that is one expression
    becomes its value, one with text around them a string; lists and mappings are filled
    throughout."""
    if isinstance(value, str):
        whole = EXPRESSION.fullmatch(value.strip())
        if whole is not None:
            return parse(whole.group(1)).value(scope)
        return EXPRESSION.sub(lambda m: _text(parse(m.group(1)).value(scope)), value)
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value


def converted(value: Any, kind: str | None, text: str) -> Any:
    """``value`` as ``kind`` (an input given as text on a command line becomes a number)."""
    try:
        if kind in (None, "image", "object", "list"):
            return value
        if kind == "text":
            return _text(value)
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() and not isinstance(value, float) else number
        if kind == "integer":
            return int(value)
        if kind == "boolean":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind == "json":
            return json.loads(value) if isinstance(value, str) else value
    except (TypeError, ValueError):
        pass
    raise ExpressionError(f"${{{text}}}: {value!r} is not {kind}")


def _walk(value: Any, steps: tuple[str | int | None, ...]) -> Any:
    for i, step in enumerate(steps):
        if value is MISSING or value is None:
            return MISSING
        if step is None:  # each item
            if not isinstance(value, list):
                return MISSING
            found = (_walk(item, steps[i + 1 :]) for item in value)
            return [None if item is MISSING else item for item in found]  # what an item lacks: null
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else MISSING
        else:
            value = value.get(step, MISSING) if isinstance(value, Mapping) else MISSING
    return value


def _literal(text: str) -> Any:
    """A default as written: a number, true or false, a quoted string, or the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _hint(source: str, steps: tuple[str | int | None, ...]) -> str:
    if source == "input" and steps:
        return f"give it: --input {steps[0]}=..."
    if source == "env" and steps:
        return f"set the environment variable {steps[0]}"
    return "check the name against what the component gives"
