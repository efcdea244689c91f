"""What a backend gives the runtime: the command that starts an engine, and what it can do."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    slots: int = 1  # requests one engine takes at once (parallel slots)
    endpoints: frozenset[str] = frozenset({"chat", "completions", "embeddings"})
    runtime: str = ""  # which program runs it, for `ps` and logs
