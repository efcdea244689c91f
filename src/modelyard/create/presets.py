"""Named starting points for a new model. They are data (presets.json); what they come to
(parameters, memory) is computed from their design, never copied from a table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from modelyard.create.design import Design
from modelyard.errors import InvalidRequest

FILE = Path(__file__).with_name("presets.json")


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    use: str
    design: Design


@cache
def presets() -> dict[str, Preset]:
    data = json.loads(FILE.read_text())
    return {
        name: Preset(name, entry["label"], entry["use"], Design(**entry["design"]))
        for name, entry in data.items()
    }


def preset(name: str) -> Preset:
    found = presets().get(name.lower())
    if found is None:
        raise InvalidRequest(
            f"no preset named {name!r}", param="preset", hint=f"one of {', '.join(presets())}"
        )
    return found
