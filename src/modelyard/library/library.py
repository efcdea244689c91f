"""The Library: import and scan model files, and manage their records."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from modelyard.backends.base import Found
from modelyard.backends.registry import kind_named
from modelyard.catalog.records import Adapter, Component, Model, ModelFile, ModelSettings
from modelyard.catalog.store import Store
from modelyard.categories import (
    DEFAULT_CAPABILITIES,
    DIFFUSION,
    TEMPLATE_COMPONENTS,
    Capability,
    Category,
    ComponentRole,
    Template,
    diffusion_category,
)
from modelyard.errors import (
    Conflict,
    IncompatibleAdapter,
    InvalidImport,
    ModelExists,
    ModelLoaded,
    ModelNotFound,
    ModelyardError,
)
from modelyard.formats.detect import inspect_path
from modelyard.formats.files import kind_of, usable_path
from modelyard.formats.gguf import shard_paths
from modelyard.formats.inspection import ADAPTER, COMPONENT, Inspection
from modelyard.formats.loaders import REMOTE
from modelyard.library import lora, settings
from modelyard.library.naming import check_name, default_name, unique_name
from modelyard.library.requests import ImportRequest, RemoteRequest, ScanReport

MODEL_SUFFIXES = (".gguf", ".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx")
FOLDER_MARKERS = ("config.json", "model_index.json", "adapter_config.json")


def _enum(kind: type[Any], value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(v.value for v in kind)
        raise InvalidImport(f"unknown {what} {value!r}", hint=f"choose one of: {choices}") from None


def _nobody_loaded(_name: str) -> bool:
    return False


class Library:
    """The model library. ``is_loaded`` tells whether a model is loaded; the runtime provides
    it (until serving exists nothing is ever loaded)."""

    def __init__(self, store: Store, *, is_loaded: Callable[[str], bool] = _nobody_loaded) -> None:
        self.store = store
        self.is_loaded = is_loaded
        self._resolved: dict[str, tuple[int, Model, str | None]] = {}

    # -- reading -----------------------------------------------------------------------------

    def models(self, category: str | None = None) -> list[Model]:
        if category is not None:
            _enum(Category, category, "category")
        return self.store.list_models(category)

    def get(self, name: str) -> Model:
        return self.store.get_model(name)

    def has(self, name: str) -> bool:
        """Whether a model of this name is in the library."""
        try:
            self.store.get_model(name)
        except ModelNotFound:
            return False
        return True

    def resolve(self, requested: str) -> tuple[Model, str | None]:
        """The model (and adapter) an OpenAI ``model`` field names: ``name``, an alias, or
        ``base:adapter``. On the gateway's hot path: cached until the catalog changes."""
        cached = self._resolved.get(requested)
        if cached is not None and cached[0] == self.store.generation:
            return cached[1], cached[2]
        generation = self.store.generation
        model, adapter = self._resolve(requested)
        if len(self._resolved) > 1024:
            self._resolved.clear()
        self._resolved[requested] = (generation, model, adapter)
        return model, adapter

    def _resolve(self, requested: str) -> tuple[Model, str | None]:
        base, _, adapter = requested.partition(":")
        try:
            return self.store.get_model(base), adapter or None
        except ModelNotFound:
            found = self.store.find_by_alias(base)
            if found is None:
                raise
            return found, adapter or None

    # -- importing ---------------------------------------------------------------------------

    def import_model(self, request: ImportRequest) -> Model:
        """Import a model file or folder; its files stay where they are."""
        insp = inspect_path(request.path)
        return self._import(insp, request, explicit_name=request.name is not None)

    def import_found(self, insp: Inspection, request: ImportRequest, worker: str) -> Model:
        """Import a model inspected on a cluster's ``worker`` (only the workers hold its files):
        its facts say where it was found; it runs where its path is."""
        insp.facts = {**insp.facts, "found_on": worker}
        return self._import(insp, request, explicit_name=request.name is not None)

    def _import(self, insp: Inspection, request: ImportRequest, *, explicit_name: bool) -> Model:
        if insp.kind == ADAPTER:
            raise InvalidImport(
                f"{insp.path.name} is a LoRA adapter, not a model",
                hint=f"bind it to its base model: `modelyard lora add BASE {insp.path}`",
            )
        if insp.kind == COMPONENT:
            role = insp.role.value if insp.role else "component"
            raise InvalidImport(
                f"{insp.path.name} is a {role} component, not a model",
                hint=f"attach it to a model: `modelyard component set MODEL {role} {insp.path}`",
            )
        existing = self.store.find_by_path(str(insp.path))
        if existing is not None:
            raise ModelExists(
                f"{insp.path} is already in the library as {existing.name!r}",
                hint=f"`modelyard show {existing.name}`",
            )
        category = _enum(Category, request.category, "category") if request.category else insp.category
        if category is None:
            raise InvalidImport(
                f"could not tell what kind of model {insp.path.name} is", hint="pass --category"
            )
        if category in DIFFUSION and insp.category not in DIFFUSION and insp.format not in (
            "safetensors", "gguf", "pytorch", "diffusers"
        ):  # fmt: skip
            raise InvalidImport(f"{insp.path.name} ({insp.format}) cannot be an image model")
        if explicit_name and request.name:
            name = check_name(request.name)
        else:
            name = unique_name(default_name(insp.path), self.store.name_taken)

        components = self._components(insp, category, request)
        template: Template | None = None
        capabilities: list[str] = []
        if category in DIFFUSION:
            template = _enum(Template, request.template, "template") if request.template else insp.template
            template = template or (Template.VIDEO if category is Category.VIDEO else Template.SD_OFFICIAL)
            category = diffusion_category(template)  # the template decides: a clip model is video
            capabilities = self._capabilities(template, request.capabilities)
            for c in components:
                if ComponentRole(c.role) not in TEMPLATE_COMPONENTS[template]:
                    allowed = ", ".join(r.value for r in TEMPLATE_COMPONENTS[template])
                    raise InvalidImport(f"the {template} template takes {allowed}; not {c.role}")
        elif request.template or request.capabilities:
            raise InvalidImport(
                "templates and capabilities are for image models",
                hint="drop them or use --category image",
            )
        if any(c.role == ComponentRole.MMPROJ for c in components) and category is Category.CHAT:
            category = Category.MULTIMODAL

        insp.category = category
        facts = dict(insp.facts)
        if insp.warnings:
            facts["warnings"] = insp.warnings
        facts["category_from"] = insp.category_from if not request.category else "user"
        model = Model(
            name=name,
            description=request.description,
            category=category.value,
            format=insp.format,
            path=str(insp.path),
            quantization=insp.quantization,
            architecture=insp.architecture,
            parameters=insp.parameters,
            context_length=insp.context_length,
            template=template.value if template else None,
            capabilities=capabilities,
            unsafe=insp.unsafe,
            facts=facts,
            files=[ModelFile(str(f.path), f.size) for f in insp.files],
            components=components,
        )
        return self.store.add_model(model)

    def add_remote(self, request: RemoteRequest) -> Model:
        """Register one model of a server that already runs (probed by the caller): nothing is
        copied or started; the gateway sends its requests there."""
        if request.remote_model not in request.served:
            raise InvalidImport(
                f"{request.url} serves no model {request.remote_model!r}",
                hint=f"it serves {', '.join(request.served)}",
            )
        path = f"{request.url.rstrip('/')}#{request.remote_model}"
        existing = self.store.find_by_path(path)
        if existing is not None:
            raise ModelExists(f"{path} is already in the library as {existing.name!r}")
        guessed = Category.EMBEDDING if "embed" in request.remote_model.lower() else Category.CHAT
        category = _enum(Category, request.category, "category") if request.category else guessed
        base = request.remote_model.rsplit("/", 1)[-1].removesuffix(".gguf")
        name = (
            check_name(request.name)
            if request.name
            else unique_name(default_name(Path(base)), self.store.name_taken)
        )
        facts: dict[str, Any] = {
            "api": request.api,
            "remote_model": request.remote_model,
            "served": request.served,
        }
        if request.api_key:
            facts["api_key"] = request.api_key
        facts["category_from"] = "user" if request.category else "name"
        model = Model(
            name=name,
            description=request.description or f"{request.remote_model} at {request.url}",
            category=category.value,
            format=REMOTE,
            path=path,
            facts=facts,
            source="remote",
            autoload=True,  # nothing to start: its first request connects
        )
        return self.store.add_model(model)

    def _components(self, insp: Inspection, category: Category, request: ImportRequest) -> list[Component]:
        given = {
            _enum(ComponentRole, role, "component role"): path for role, path in request.components.items()
        }
        found: list[Component] = []
        for role, path in given.items():
            found.append(self._component(role, path))
        if ComponentRole.MMPROJ not in given and category in (Category.MULTIMODAL, Category.CHAT):
            for companion in insp.companions:
                found.append(_component_of(ComponentRole.MMPROJ, companion))
        return found

    def _component(self, role: ComponentRole, path: str) -> Component:
        insp = inspect_path(path)
        if insp.kind == COMPONENT and insp.role is not None and insp.role is not role:
            raise InvalidImport(f"{insp.path.name} is a {insp.role} component, not {role}")
        if insp.kind == ADAPTER:
            raise InvalidImport(f"{insp.path.name} is a LoRA adapter, not a {role} component")
        if role is ComponentRole.MMPROJ and insp.role is not ComponentRole.MMPROJ:
            raise InvalidImport(f"{insp.path.name} is not a multimodal projector (mmproj) GGUF")
        return _component_of(role, insp)

    @staticmethod
    def _capabilities(template: Template, wanted: list[str] | None) -> list[str]:
        if wanted is None:
            return [c.value for c in DEFAULT_CAPABILITIES[template]]
        caps = [_enum(Capability, c, "capability") for c in wanted]
        video = template is Template.VIDEO
        for c in caps:
            if (c is Capability.VIDEO) != video:
                raise InvalidImport(f"a {template} model cannot have the {c} capability")
        return sorted({c.value for c in caps})

    # -- scanning ----------------------------------------------------------------------------

    def scan(self, root: str) -> ScanReport:
        """Import every recognisable model under ``root``; what is already there is left as is."""
        top = inspect_root(root)
        report = ScanReport()
        known = self.store.known_paths()
        claimed: set[str] = set()  # files that a model imported by this scan took along
        adapters: list[Inspection] = []
        for candidate in _candidates(top):
            if str(candidate) in claimed:
                continue
            if str(candidate) in known:
                report.unchanged.append(str(candidate))
                continue
            try:
                insp = inspect_path(candidate)
            except ModelyardError as e:
                report.failed.append((str(candidate), str(e)))
                continue
            if insp.kind == ADAPTER:
                adapters.append(insp)
                continue
            if insp.kind == COMPONENT:
                role = insp.role.value if insp.role else "component"
                report.skipped.append((str(candidate), f"a {role} component: attach it to its model"))
                continue
            try:
                model = self._import(insp, ImportRequest(path=str(candidate)), explicit_name=False)
            except ModelyardError as e:
                report.failed.append((str(candidate), str(e)))
                continue
            report.imported.append(model.name)
            claimed.update(f.path for f in model.files)
            claimed.update(c.path for c in model.components)
        for insp in adapters:
            self._scan_adapter(insp, report)
        return report

    def _scan_adapter(self, insp: Inspection, report: ScanReport) -> None:
        """Bind a LoRA found by a scan to the one base model beside it that it fits."""
        folder = str(insp.path.parent)
        bases = [
            m for m in self.store.list_models() if str(Path(m.path).parent) == folder and m.format == "gguf"
        ]
        fitting = []
        for base in bases:
            try:
                lora.check_adapter(base, insp)
            except ModelyardError:
                continue
            fitting.append(base)
        if len(fitting) != 1:
            why = "no model beside it fits" if not fitting else "several models beside it fit"
            report.skipped.append(
                (str(insp.path), f"a LoRA adapter; {why}: bind it with `modelyard lora add`")
            )
            return
        name = unique_name(default_name(insp.path), lambda n: fitting[0].adapter(n) is not None)
        self._bind(fitting[0], insp, name, "")
        report.imported.append(f"{fitting[0].name}:{name}")

    # -- managing ----------------------------------------------------------------------------

    def update(
        self,
        name: str,
        *,
        new_name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        capabilities: list[str] | None = None,
        autoload: bool | None = None,
        aliases: list[str] | None = None,
    ) -> Model:
        """Rename, describe, recategorise or retag a model; set autoload and aliases."""
        model = self.get(name)
        fields: dict[str, Any] = {}
        if new_name is not None and new_name != name:
            fields["name"] = check_name(new_name)
            if self.is_loaded(name):
                raise ModelLoaded(name)
        if description is not None:
            fields["description"] = description
        if category is not None:
            chosen = _enum(Category, category, "category")
            if (chosen in DIFFUSION) != (model.category in DIFFUSION):
                raise InvalidImport(
                    f"{name!r} cannot move between image and text categories",
                    hint="delete it and import it again with --category",
                )
            fields["category"] = chosen.value
        if capabilities is not None:
            if model.category not in DIFFUSION or model.template is None:
                raise InvalidImport("capabilities are for image models")
            fields["capabilities"] = self._capabilities(Template(model.template), capabilities)
        if autoload is not None:
            fields["autoload"] = autoload
        if aliases is not None:
            fields["aliases"] = self._aliases(name, aliases)
        return self.store.update_model(name, **fields) if fields else model

    def _aliases(self, name: str, aliases: list[str]) -> list[str]:
        for alias in aliases:
            check_name(alias, "alias")
            owner = self.store.find_by_alias(alias)
            if self.store.has_name(alias) or (owner is not None and owner.name != name):
                raise ModelExists(f"{alias!r} already names another model", hint="pick another alias")
            if self.store.has_route(alias):
                raise ModelExists(f"{alias!r} names a route", hint="pick another alias")
        return sorted(set(aliases))

    def delete(self, name: str) -> None:
        """Remove the record with its adapters and components; never a file."""
        self.get(name)
        if self.is_loaded(name):
            raise ModelLoaded(name)
        routes = [r.name for r in self.store.routes() if any(t.model == name for t in r.targets)]
        if routes:
            raise Conflict(
                f"{name!r} is a target of the route {', '.join(routes)}",
                hint="take it out of the route first: `modelyard routes edit`",
            )
        self.store.delete_model(name)

    # -- components and adapters ---------------------------------------------------------------

    def set_component(self, name: str, role: str, path: str) -> Model:
        model = self.get(name)
        r = _enum(ComponentRole, role, "component role")
        if r is ComponentRole.MMPROJ:
            if model.category not in (Category.MULTIMODAL, Category.CHAT):
                raise InvalidImport("an mmproj belongs to a multimodal GGUF model")
        else:
            if model.category not in DIFFUSION or model.template is None:
                raise InvalidImport(f"{r} components belong to image models")
            if r not in TEMPLATE_COMPONENTS[Template(model.template)]:
                raise InvalidImport(f"the {model.template} template does not take {r}")
        updated = self.store.set_component(name, self._component(r, path))
        if r is ComponentRole.MMPROJ and updated.category == Category.CHAT:
            updated = self.store.update_model(name, category=Category.MULTIMODAL.value)
        return updated

    def remove_component(self, name: str, role: str) -> Model:
        return self.store.remove_component(name, _enum(ComponentRole, role, "component role").value)

    def add_adapter(
        self, name: str, path: str, adapter_name: str | None = None, description: str = ""
    ) -> Model:
        base = self.get(name)
        insp = inspect_path(path)
        lora.check_adapter(base, insp)
        chosen = check_name(adapter_name, "adapter") if adapter_name else default_name(insp.path)
        return self._bind(base, insp, chosen, description)

    def adapter_fit(self, name: str, path: str) -> tuple[Inspection, str | None]:
        """The LoRA at ``path``, and why it does not fit model ``name`` (None: it does)."""
        base = self.get(name)
        insp = inspect_path(path)
        try:
            lora.check_adapter(base, insp)
        except IncompatibleAdapter as e:
            return insp, e.message
        return insp, None

    def _found(self, wanted: str) -> Found:
        """A model that options name: a library model, else the file or folder ``wanted``."""
        try:
            model = self.store.get_model(wanted)
            return Found(model.path, model.format, model.facts)
        except ModelNotFound:
            insp = inspect_path(wanted)
            return Found(str(insp.path), insp.format, insp.facts)

    def _bind(self, base: Model, insp: Inspection, name: str, description: str) -> Model:
        adapter = Adapter(
            name=name,
            format=lora.adapter_format(insp),
            path=str(insp.path),
            size=insp.size,
            description=description,
            facts={k: v for k, v in insp.facts.items() if k != "shapes"},
        )
        return self.store.add_adapter(base.name, adapter)

    def remove_adapter(self, name: str, adapter: str) -> Model:
        return self.store.remove_adapter(name, adapter)

    # -- settings ------------------------------------------------------------------------------

    def settings(self, name: str) -> tuple[str, dict[str, Any], BaseModel]:
        """(backend, saved options, effective options)."""
        model = self.get(name)
        backend = settings.backend_of(model)
        saved = model.settings.options if model.settings else {}
        return backend, saved, settings.effective(model)

    def put_settings(
        self, name: str, options: dict[str, Any], *, merge: bool = True, backend: str | None = None
    ) -> Model:
        """Merge ``options`` into the saved ones (or replace them); None removes an option. Atomic:
        settings saved at the same moment all stay. ``backend``: the backend they are for (one
        that takes the model), when not the one they follow now: the saved options its schema
        shares carry over. What names another model (a draft model) is saved as that model's
        file, once the backend has checked that it goes with this one."""
        model = self.get(name)
        target, _ = settings.schema_for(model, backend)
        options = kind_named(target).settle(model, options, self._found)
        return self.store.change_settings(name, lambda model: _merged(model, options, merge, backend))

    def with_settings(self, name: str, options: dict[str, Any], *, backend: str | None = None) -> Model:
        """The model as it would be with ``options`` merged into its settings: checked as
        ``put_settings`` checks them, and not saved."""
        model = self.get(name)
        if not options and backend is None:
            return model
        target, _ = settings.schema_for(model, backend)
        options = kind_named(target).settle(model, options, self._found)
        return dataclasses.replace(model, settings=_merged(model, options, True, backend))


def _merged(model: Model, options: dict[str, Any], merge: bool, backend: str | None) -> ModelSettings:
    """``model``'s settings with ``options`` merged in (or instead, without ``merge``), checked."""
    target, schema = settings.schema_for(model, backend)
    current = model.settings.options if model.settings and merge else {}
    if model.settings and model.settings.backend != target:
        current = {k: v for k, v in current.items() if k in schema.model_fields}
    combined = {**current, **options}
    combined = {k: v for k, v in combined.items() if v is not None}
    parsed = settings.validate(model, combined, schema)
    saved = parsed.model_dump(include=set(combined))
    return ModelSettings(backend=target, options=saved)


def _component_of(role: ComponentRole, insp: Inspection) -> Component:
    facts: dict[str, Any] = {k: insp.facts[k] for k in ("kind", "tensor_count") if k in insp.facts}
    if insp.architecture:
        facts["architecture"] = insp.architecture
    return Component(role=role.value, path=str(insp.path), size=insp.size, facts=facts)


def inspect_root(root: str) -> Path:
    path = usable_path(root)
    if not stat.S_ISDIR(kind_of(path).st_mode):
        raise InvalidImport(f"{path} is a file", hint="scan takes a folder; `modelyard import` takes a file")
    return Path(os.path.abspath(path))


def _candidates(root: Path) -> list[Path]:
    """Model folders (not descended into) and model files, in a stable order."""
    found: list[Path] = []
    seen: set[Path] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = here.resolve()
        if real in seen:  # a symlink loop, or a folder reached twice
            dirs.clear()
            continue
        seen.add(real)
        dirs.sort()
        if any(m in files for m in FOLDER_MARKERS) or sum(f.endswith(".onnx") for f in files) >= 2:
            found.append(here)
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(files):
            path = here / name
            if path.suffix.lower() not in MODEL_SUFFIXES:
                continue
            shards = shard_paths(path) if path.suffix.lower() == ".gguf" else None
            if shards and shards[0] != path:
                continue
            found.append(path)
    # mmproj files go last so the models beside them claim them first.
    return sorted(found, key=lambda p: "mmproj" in p.name.lower())
