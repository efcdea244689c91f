"""Load rules (the model library manual): one base model per category at a time, loading another
unloads the old one, chat and multimodal never together, at most one LoRA for chat or multimodal.
A policy object so that a workstation or a cluster can relax them."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.errors import LoadRefused


@dataclass(frozen=True)
class Loaded:
    name: str
    category: str
    adapter: str | None


@dataclass(frozen=True)
class LoadPolicy:
    one_per_category: bool = True
    # Categories of which only one model may be loaded at a time, across the group.
    exclusive: tuple[frozenset[str], ...] = (frozenset({"chat", "multimodal"}),)
    max_loras: dict[str, int] = field(default_factory=lambda: {"chat": 1, "multimodal": 1})

    @classmethod
    def from_settings(cls, one_per_category: bool, exclusive: list[str], max_loras: int) -> LoadPolicy:
        groups = tuple(frozenset(g.split("+")) for g in exclusive if g)
        return cls(one_per_category, groups, {"chat": max_loras, "multimodal": max_loras})

    def displaced(self, name: str, category: str, adapters: list[str], loaded: list[Loaded]) -> list[str]:
        """The loaded models that must be unloaded before ``name`` loads (never ``name`` itself)."""
        limit = self.max_loras.get(category)
        if limit is not None and len(adapters) > limit:
            raise LoadRefused(
                f"a {category} model takes at most {limit} LoRA adapter(s) at a time, not {len(adapters)}",
                hint="pick one adapter",
            )
        out: list[str] = []
        for other in loaded:
            if other.name == name:
                continue
            same = self.one_per_category and other.category == category
            grouped = any(category in group and other.category in group for group in self.exclusive)
            if same or grouped:
                out.append(other.name)
        return out
