"""What a quantization name means, as the beginner's guide explains it: bits per weight (the
model's own, computed from its files where it can be), what the name's parts say, a quality note,
and a warning below 4 bits, the guide's line under which models lose much of their ability."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.catalog.records import Model

FULL = {"F32": 32, "F16": 16, "BF16": 16, "F64": 64}
GGUF_NAME = re.compile(
    r"^(?P<iq>I)?(?P<kind>Q|TQ)(?P<bits>\d)(?:_(?P<scheme>K|0|1|NL))?(?:_(?P<size>XXS|XS|S|M|L))?"
)
SIZES = {"XXS": "extra-extra-small", "XS": "extra-small", "S": "small", "M": "medium", "L": "large"}
LINE = 4.0  # the guide's "life-and-death line"


@dataclass(frozen=True)
class Precision:
    bits_per_weight: float | None
    measured: bool  # computed from the files (file bits / parameters), not the name's or config's
    meaning: str  # what the name's parts say
    note: str  # the quality to expect
    warning: str | None  # below 4 bits


def _note(bits: float) -> str:
    if bits >= 15:
        return "full precision: the original weights"
    if bits >= 7.5:
        return "8-bit: practically the original's quality"
    if bits >= 5.5:
        return "6-bit: very close to the original"
    if bits >= 4.5:
        return "5-bit: close to the original; a good balance"
    if bits >= LINE:
        return "4-bit: the usual trade-off, a small loss; a bigger model at 4 bits beats a smaller one at 6"
    return "below 4 bits: quality drops sharply"


def _gguf_meaning(label: str) -> str:
    if label in FULL:
        return f"{label}: unquantized {FULL[label]}-bit floats"
    m = GGUF_NAME.match(label)
    if m is None:
        return label
    parts = [f"{m['bits']}-bit level" if m["kind"] == "Q" else f"ternary ({m['bits']} bits a weight packed)"]
    if m["iq"]:
        parts.append("i-quant (importance-weighted, best with an imatrix)")
    if m["scheme"] == "K":
        parts.append("k-quant (blocks with their own scales)")
    elif m["scheme"] in ("0", "1"):
        parts.append("legacy quant" + (" with an offset" if m["scheme"] == "1" else ""))
    if m["size"]:
        parts.append(f"{SIZES[m['size']]} mix within the level")
    return f"{label}: " + ", ".join(parts)


def _level(label: str) -> float | None:
    """The bits the GGUF name's level says (Q4_K_M: 4), or None."""
    if label in FULL:
        return float(FULL[label])
    m = GGUF_NAME.match(label)
    if m is None:
        return None
    return float(m["bits"]) if m["kind"] == "Q" else 1.6 if m["bits"] == "1" else 2.0


def precision_of(model: Model) -> Precision | None:
    """None when there is nothing to say (an unknown format or quantization)."""
    facts = model.facts
    label = model.quantization or ""
    if model.format == "gguf":
        level = _level(label)
        meaning = _gguf_meaning(label)
        # the whole file over the weights: embeddings and outputs are often kept at more bits
        measured = model.size * 8 / model.parameters if model.parameters else None
    else:
        method = facts.get("quant_method")
        configured = facts.get("bpw") or facts.get("bits")
        measured = None
        if method and isinstance(configured, int | float):
            level = float(configured)
            meaning = f"{label}: {str(method).upper()} at {level:g} bits"
        elif label in FULL:
            level = float(FULL[label])
            meaning = f"{label}: unquantized {FULL[label]}-bit floats"
        else:
            return None
    bits = level if level is not None else measured
    if bits is None:
        return Precision(None, False, meaning, "unknown", None)
    warning = (
        f"{label or f'{bits:g} bits'} is below the 4-bit line: expect a clearly weaker model; "
        "prefer 4 bits or more (a bigger model at 4 bits beats a smaller one at 6)"
        if bits < LINE
        else None
    )
    shown = measured if measured is not None else bits
    return Precision(round(shown, 2), measured is not None, meaning, _note(bits), warning)
