"""Tidy terminal output: sizes, tables, and the model detail view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:  # loaded by the commands that print tables, when they do
    from rich.table import Table

# no :emoji: codes: a model's name is printed as it is (and their table is not loaded)
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


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


@dataclass(frozen=True)
class Column:
    """A column of a table that fits the terminal: ``fold`` wraps long values (a name); the others
    are never cut, and those with a ``drop`` rank go first (1 first) when the table is too wide."""

    header: str
    fold: bool = False
    drop: int | None = None


GAP = 2  # spaces between columns


def fitted(columns: list[Column], rows: list[list[str]], width: int | None = None) -> Table:
    """A table that fits ``width`` (the terminal's): the least useful columns are left out, a
    folding column wraps, and no value of another column is ever cut short."""
    width = width or console.width
    kept = list(range(len(columns)))

    def needed(i: int) -> int:
        return max([len(columns[i].header), *(len(r[i]) for r in rows)])

    def total() -> int:
        fixed = sum(needed(i) for i in kept if not columns[i].fold)
        folding = sum(min(needed(i), 16) for i in kept if columns[i].fold)  # folds down to 16
        return fixed + folding + GAP * (len(kept) - 1)

    for i in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop or 0):
        if total() <= width:
            break
        kept.remove(i)
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, GAP, 0, 0), expand=False)
    for i in kept:
        c = columns[i]
        if c.fold:
            table.add_column(c.header, overflow="fold")
        else:
            table.add_column(c.header, no_wrap=True, min_width=needed(i))
    for r in rows:
        table.add_row(*(r[i] for i in kept))
    return table


def models_table(models: list[dict[str, Any]]) -> Table:
    any_loaded = any(m["loaded"] for m in models)
    columns = [
        Column("NAME", fold=True),
        Column("CATEGORY"),
        Column("FORMAT", drop=3),
        Column("QUANT"),
        Column("PARAMS", drop=2),
        Column("SIZE"),
        Column("CTX", drop=1),
    ]
    if any_loaded:
        columns.append(Column("STATUS"))
    rows = []
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
        rows.append([*row, *(["loaded" if m["loaded"] else ""] if any_loaded else [])])
    return fitted(columns, rows)


def model_detail(m: dict[str, Any]) -> Table:
    from rich.table import Table

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
    p = m.get("precision")
    if p:
        bits = (
            f"{p['bits_per_weight']:g} bits per weight{' (measured)' if p['measured'] else ''}; "
            if p["bits_per_weight"]
            else ""
        )
        row("precision", f"{p['meaning']}\n{bits}{p['note']}")
    row("architecture", m["architecture"])
    row("parameters", f"{human_count(m['parameters'])} ({m['parameters']:,})" if m["parameters"] else None)
    row("context", m["context_length"])
    row("size", human_size(m["size"]))
    row(
        "loaders",
        "\n".join(f"{x['name']}: {x['why']}" for x in m.get("loaders_why", [])) or "none (convert the model)",
    )
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
    if p and p["warning"]:
        row("warning", p["warning"])
    return table
