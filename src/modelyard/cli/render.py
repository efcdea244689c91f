"""Tidy terminal output: sizes, tables, and the model detail view."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def models_table(models: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    widest = max((len(m["name"]) for m in models), default=4)
    table.add_column("NAME", min_width=min(widest, 48), overflow="fold")
    columns = ["CATEGORY", "FORMAT", "QUANT", "PARAMS", "SIZE", "CTX"]
    any_loaded = any(m["loaded"] for m in models)
    for col in [*columns, "STATUS"] if any_loaded else columns:
        table.add_column(col, no_wrap=col != "QUANT")
    for m in models:
        row = [
            m["name"],
            m["category"],
            m["format"],
            m["quantization"] or "-",
            human_count(m["parameters"]),
            human_size(m["size"]),
            str(m["context_length"] or "-"),
        ]
        table.add_row(*row, *(["loaded" if m["loaded"] else ""] if any_loaded else []))
    return table


def model_detail(m: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()

    def row(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            table.add_row(label, str(value))

    row("name", m["name"])
    row("description", m["description"])
    from_name = m["facts"].get("category_from") == "name"
    row("category", m["category"] + ("  (from the file name: metadata says nothing)" if from_name else ""))
    row("format", m["format"] + ("  (pickle: unsafe to load from untrusted sources)" if m["unsafe"] else ""))
    row("quantization", m["quantization"])
    row("architecture", m["architecture"])
    row("parameters", f"{human_count(m['parameters'])} ({m['parameters']:,})" if m["parameters"] else None)
    row("context", m["context_length"])
    row("size", human_size(m["size"]))
    row("loaders", ", ".join(m["loaders"]) or "none (convert the model)")
    row("template", m["template"])
    row("capabilities", ", ".join(m["capabilities"]))
    row("status", "loaded" if m["loaded"] else "not loaded")
    row("path", m["path"])
    if len(m["files"]) > 1:
        row("files", "\n".join(f"{f['path']}  {human_size(f['size'])}" for f in m["files"]))
    for c in m["components"]:
        row(c["role"], c["path"])
    for a in m["adapters"]:
        row("adapter", f"{a['name']}  ({a['format']})  {a['path']}")
    hidden = ("warnings", "category_from", "context_length")
    facts = {k: v for k, v in m["facts"].items() if k not in hidden}
    if "name" in facts:
        facts["name in file"] = facts.pop("name")
    for key, value in facts.items():
        if isinstance(value, list | tuple) and len(value) > 8:
            value = f"[{len(value)} items]"
        row(key, value)
    for w in m["facts"].get("warnings", []):
        row("warning", w)
    return table
