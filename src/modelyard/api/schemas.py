"""Request and response bodies of the management API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from modelyard.backends.registry import loaders_for
from modelyard.catalog.records import Model
from modelyard.categories import Capability, Category, ComponentRole, Template
from modelyard.formats.inspection import MODEL, Inspection
from modelyard.formats.loaders import why
from modelyard.formats.precision import Precision, precision_of


class FileOut(BaseModel):
    path: str
    size: int
    sha256: str | None = None


class ComponentOut(BaseModel):
    role: ComponentRole
    path: str
    size: int
    facts: dict[str, Any] = {}


class AdapterOut(BaseModel):
    name: str
    format: str
    path: str
    size: int
    description: str = ""
    facts: dict[str, Any] = {}


class LoaderOut(BaseModel):
    name: str
    why: str


class PrecisionOut(BaseModel):
    bits_per_weight: float | None = Field(
        description="the file's bits over its weights (GGUF), or the config's"
    )
    measured: bool = Field(description="computed from the files, not read from the name or config")
    meaning: str = Field(description="what the quantization's name says")
    note: str = Field(description="the quality to expect")
    warning: str | None = Field(description="below 4 bits: the beginner's guide's line")

    @classmethod
    def of(cls, p: Precision | None) -> PrecisionOut | None:
        if p is None:
            return None
        return cls(bits_per_weight=p.bits_per_weight, measured=p.measured, meaning=p.meaning, note=p.note,
                   warning=p.warning)  # fmt: skip


class ModelOut(BaseModel):
    name: str
    description: str
    category: Category
    format: str
    path: str
    size: int
    quantization: str | None
    architecture: str | None
    parameters: int | None
    context_length: int | None
    template: Template | None
    capabilities: list[Capability]
    loaders: list[str]
    loaders_why: list[LoaderOut] = Field(description="each loader with why it is offered")
    precision: PrecisionOut | None = Field(description="the quantization explained")
    unsafe: bool
    loaded: bool
    autoload: bool
    aliases: list[str]
    source: str
    source_repo: str | None
    source_revision: str | None
    files: list[FileOut]
    components: list[ComponentOut]
    adapters: list[AdapterOut]
    facts: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, m: Model, *, loaded: bool) -> ModelOut:
        return cls(
            name=m.name,
            description=m.description,
            category=Category(m.category),
            format=m.format,
            path=m.path,
            size=m.size,
            quantization=m.quantization,
            architecture=m.architecture,
            parameters=m.parameters,
            context_length=m.context_length,
            template=Template(m.template) if m.template else None,
            capabilities=[Capability(c) for c in m.capabilities],
            loaders=(loaders := loaders_for(m)),
            loaders_why=[
                LoaderOut(name=loader, why=why(loader, m.format, m.facts.get("quant_method"), m.category))
                for loader in loaders
            ],
            precision=PrecisionOut.of(precision_of(m)),
            unsafe=m.unsafe,
            loaded=loaded,
            autoload=m.autoload,
            aliases=m.aliases,
            source=m.source,
            source_repo=m.source_repo,
            source_revision=m.source_revision,
            files=[FileOut(path=f.path, size=f.size, sha256=f.sha256) for f in m.files],
            components=[
                ComponentOut(role=ComponentRole(c.role), path=c.path, size=c.size, facts=c.facts)
                for c in m.components
            ],
            adapters=[
                AdapterOut(
                    name=a.name,
                    format=a.format,
                    path=a.path,
                    size=a.size,
                    description=a.description,
                    facts=a.facts,
                )
                for a in m.adapters
            ],
            facts={k: "***" if k == "api_key" else v for k, v in m.facts.items()},
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class ImportIn(BaseModel):
    path: str | None = Field(None, description="a model file or folder on the server's machine")
    url: str | None = Field(None, description="or a server that already runs (OpenAI-compatible or TGI)")
    api_key: str | None = Field(None, description="that server's key (kept, never shown)")
    remote_model: str | None = Field(None, description="which of that server's models (default: its first)")
    name: str | None = None
    description: str = ""
    category: str | None = Field(None, description="inferred from the files when left out")
    template: str | None = Field(None, description="image models: sd_official, flux or video")
    components: dict[str, str] = Field(default_factory=dict, description="role -> path (vae, clip_l, ...)")
    capabilities: list[str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImportIn:
        if (self.path is None) == (self.url is None):
            raise ValueError("give a path (a model file or folder) or a url (a server that already runs)")
        return self


class ModelPatch(BaseModel):
    name: str | None = None
    description: str | None = None
    category: str | None = None
    capabilities: list[str] | None = None
    autoload: bool | None = Field(None, description="load on the first request (JIT)")
    aliases: list[str] | None = Field(None, description="other names the gateway accepts")


class PathIn(BaseModel):
    path: str


class AdapterIn(BaseModel):
    path: str
    name: str | None = None
    description: str = ""


class AdapterPathIn(BaseModel):
    path: str = Field(description="a LoRA file or folder on the server")


class AdapterCheckOut(BaseModel):
    """Whether a LoRA fits a base model, before it is imported."""

    fits: bool
    reason: str | None = Field(description="why it does not fit (None: it does)")
    name: str = Field(description="the name it gets unless one is given")
    format: str = Field(description="gguf-lora, peft or sd-lora")
    size: int


class SettingsIn(BaseModel):
    options: dict[str, Any]
    replace: bool = Field(False, description="replace the saved options instead of merging into them")
    backend: str | None = Field(
        None, description="the backend they are for (one that runs the model); default: the one they follow"
    )


class SettingsOut(BaseModel):
    backend: str
    saved: dict[str, Any]
    effective: dict[str, Any]


class Skipped(BaseModel):
    path: str
    reason: str


class ScanOut(BaseModel):
    imported: list[str]
    unchanged: list[str]
    skipped: list[Skipped]
    failed: list[Skipped]


def _as_model(i: Inspection) -> Model:
    """What the backends would see of the model ``i`` describes, were it imported."""
    category = (i.category or Category.CHAT).value
    return Model(
        name=i.path.name, category=category, format=i.format, path=str(i.path), facts=i.facts,
        architecture=i.architecture, quantization=i.quantization,
    )  # fmt: skip


class InspectionOut(BaseModel):
    path: str
    format: str
    kind: str
    category: Category | None
    category_from: str
    architecture: str | None
    quantization: str | None
    parameters: int | None
    context_length: int | None
    role: ComponentRole | None
    template: Template | None
    unsafe: bool
    size: int
    files: list[FileOut]
    loaders: list[str]
    facts: dict[str, Any]
    warnings: list[str]
    companions: list[str]

    @classmethod
    def of(cls, i: Inspection) -> InspectionOut:
        return cls(
            path=str(i.path),
            format=i.format,
            kind=i.kind,
            category=i.category,
            category_from=i.category_from,
            architecture=i.architecture,
            quantization=i.quantization,
            parameters=i.parameters,
            context_length=i.context_length,
            role=i.role,
            template=i.template,
            unsafe=i.unsafe,
            size=i.size,
            files=[FileOut(path=str(f.path), size=f.size) for f in i.files],
            loaders=loaders_for(_as_model(i)) if i.kind == MODEL else [],
            facts={k: v for k, v in i.facts.items() if k != "shapes"},
            warnings=i.warnings,
            companions=[str(c.path) for c in i.companions],
        )


class PathEntryOut(BaseModel):
    path: str
    name: str
    folder: bool
    size: int | None
    model: bool = Field(description="a model file, or a folder with a model's config")


class TemplateOut(BaseModel):
    """An image model template of the model library manual: the components it takes, and the
    capabilities a model of it has unless told otherwise."""

    name: Template
    components: list[ComponentRole]
    capabilities: list[Capability]
