"""`modelyard apply`: make the library, the deployments and the routes what a spec says, and
`export`: the spec of what they are now. Apply is idempotent: a second apply of the same spec
changes nothing.

Each model of the spec is planned first (what is missing, what differs, every check that does
not need a download), then changed: created from its path or pulled from its hub, its fields,
settings and adapters set, its deployment made so; then each route is made so (its targets are
models of the library, those of the spec included). What a spec leaves out is left as it is."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.backends.external import probe, url_of
from modelyard.backends.registry import kind_named
from modelyard.catalog.records import Deployment, Model, Target
from modelyard.deployments.deployer import Deployer
from modelyard.deployments.spec import (
    AdapterSpec,
    DeploymentSpec,
    ModelSpec,
    RouteSpec,
    Source,
    Spec,
    TargetSpec,
    deployment_fields,
    ref_of,
    source_of,
)
from modelyard.errors import InvalidSpec, ModelyardError, RepoNotFound
from modelyard.formats.loaders import REMOTE
from modelyard.hub.cache import cached_snapshot, hub_cache
from modelyard.hub.jobs import ACTIVE, Downloads, PullRequest
from modelyard.hub.refs import parse_ref
from modelyard.library import Library, settings
from modelyard.library.requests import ImportRequest, RemoteRequest
from modelyard.runtime.routes import Routes
from modelyard.runtime.runtime import Runtime

Action = Literal["created", "updated", "unchanged", "would create", "would change"]


@dataclass
class Outcome:
    """What apply did (or would do) to one model or route; ``changes``: one line per
    difference."""

    name: str
    action: Action
    changes: list[str] = field(default_factory=list)
    kind: Literal["model", "route"] = "model"


@dataclass
class _Plan:
    spec: ModelSpec
    model: Model | None  # None: to be created
    changes: list[str]


def _show(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return repr(value)


def _diff(prefix: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted({*before, *after}):
        if before.get(key) != after.get(key):
            lines.append(f"{prefix}{key}: {_show(before.get(key))} -> {_show(after.get(key))}")
    return lines


class Applier:
    def __init__(
        self, library: Library, runtime: Runtime, downloads: Downloads, deployer: Deployer, routes: Routes
    ) -> None:
        self.library = library
        self.runtime = runtime
        self.downloads = downloads
        self.deployer = deployer
        self.routes = routes

    # -- apply ---------------------------------------------------------------------------------

    async def apply(self, spec: Spec, *, dry_run: bool = False) -> list[Outcome]:
        plans = [self._plan(i, m) for i, m in enumerate(spec.models)]
        routes = [self._route_plan(i, r, spec) for i, r in enumerate(spec.routes)]
        if dry_run:
            return [
                Outcome(
                    p.spec.name,
                    "would create" if p.model is None else ("would change" if p.changes else "unchanged"),
                    p.changes,
                )
                for p in plans
            ] + [
                Outcome(r.name, "would create" if new else ("would change" if changes else "unchanged"),
                        changes, "route")
                for r, new, changes in routes
            ]  # fmt: skip
        outcomes = []
        for i, plan in enumerate(plans):
            try:
                outcomes.append(await self._apply(plan))
            except ModelyardError as e:
                e.message = f"models[{i}] ({plan.spec.name}): {e.message}"
                raise
        for i, (r, new, changes) in enumerate(routes):
            if not new and not changes:
                outcomes.append(Outcome(r.name, "unchanged", kind="route"))
                continue
            try:
                self.routes.put(r.name, _targets(r), r.description or "", new=new)
            except ModelyardError as e:
                e.message = f"routes[{i}] ({r.name}): {e.message}"
                raise
            outcomes.append(Outcome(r.name, "created" if new else "updated", changes, "route"))
        return outcomes

    def _route_plan(self, i: int, r: RouteSpec, spec: Spec) -> tuple[RouteSpec, bool, list[str]]:
        """A route of the spec: whether it is new, and what differs; its targets are models of
        the library or of the spec."""
        named = {m.name for m in spec.models}
        for j, t in enumerate(r.targets):
            if t.model not in named and not self.library.store.has_name(t.model):
                raise InvalidSpec(
                    f"routes[{i}] ({r.name}): targets[{j}]: no model named {t.model!r}",
                    hint="name a model of the library or of this spec",
                )
        if r.name not in self.routes:
            if self.library.store.has_name(r.name):
                raise InvalidSpec(f"routes[{i}] ({r.name}): a model of the library has this name")
            return r, True, [f"targets: {_shown(_targets(r))}"]
        have = self.routes.get(r.name)
        before = {"targets": _shown(have.targets), "description": have.description}
        after = {"targets": _shown(_targets(r)), "description": r.description or ""}
        return r, False, _diff("", before, after)

    def _plan(self, i: int, m: ModelSpec) -> _Plan:
        """What differs between the spec of a model and the library; what cannot be done fails
        here, before anything changes."""
        where = f"models[{i}] ({m.name})"
        model = self.library.store.get_model(m.name) if self.library.store.has_name(m.name) else None
        source = source_of(m.model)
        if source.provider == "local":
            assert source.path is not None
            if not os.path.isabs(source.path):
                raise InvalidSpec(
                    f"{where}: {source.path} is relative", hint="the server takes absolute paths"
                )
            if model is not None and os.path.normpath(model.path) != os.path.normpath(source.path):
                raise InvalidSpec(
                    f"{where}: {m.name} is {model.path} in the library, not {source.path}",
                    hint="give it another name, or delete the library's record first",
                )
            if model is None and not os.path.exists(source.path):
                raise InvalidSpec(f"{where}: model: no such file or folder: {source.path}")
            other = self.library.store.find_by_path(source.path) if model is None else None
            if other is not None:
                raise InvalidSpec(
                    f"{where}: {source.path} is {other.name!r} in the library",
                    hint=f"name it {other.name} in the spec, or delete that record first",
                )
        elif source.provider == "server":
            assert source.url is not None
            if model is not None and url_of(model) != source.url.rstrip("/"):
                raise InvalidSpec(
                    f"{where}: {m.name} is the server at {url_of(model)}, not {source.url}",
                    hint="give it another name, or delete the library's record first",
                )
        else:
            ref = parse_ref(ref_of(m.model))
            if model is not None and model.source_repo not in (None, ref.repo):
                raise InvalidSpec(
                    f"{where}: {m.name} came from {model.source_repo}, not {ref.repo}",
                    hint="give it another name, or delete the library's record first",
                )
        if model is None:
            origin = source.path or source.url or ref_of(m.model)
            return _Plan(m, None, [f"+ from {origin}", *self._creating(m)])
        changes = self._fields(m, model)
        wanted = self._settings(m, model)
        if wanted is not None:
            changes += _diff("settings.", _saved(model), {"backend": wanted[0], **wanted[1]})
        for a in [*(m.peft_adapters or []), *(m.adapters or [])]:
            if model.adapter(a.name) is None:
                if a.model is None:
                    raise InvalidSpec(
                        f"{where}: adapter {a.name} is not bound to {m.name}",
                        hint="give its model: a path or a hub repo",
                    )
                changes.append(f"adapters.{a.name}: - -> {_show(a.model)}")
        if m.deployment is not None:
            changes += self._deployment_diff(model.name, m)
        return _Plan(m, model, changes)

    @staticmethod
    def _creating(m: ModelSpec) -> list[str]:
        lines = [
            f"adapters.{a.name}: - -> {_show(a.model)}"
            for a in [*(m.peft_adapters or []), *(m.adapters or [])]
        ]
        if m.deployment is not None:
            lines.append(f"deployment: - -> {m.deployment.replicas} replica(s)")
        return lines

    def _fields(self, m: ModelSpec, model: Model) -> list[str]:
        wanted = self._record(m)
        have = {"category": model.category, "description": model.description, "aliases": sorted(model.aliases),
                "autoload": model.autoload}  # fmt: skip
        return _diff("", {k: have[k] for k in wanted}, wanted)

    @staticmethod
    def _record(m: ModelSpec) -> dict[str, Any]:
        """The record's fields the spec sets."""
        out: dict[str, Any] = {}
        kind = m.kind()
        if kind is not None:
            out["category"] = kind.value
        if m.description is not None:
            out["description"] = m.description
        if m.aliases is not None:
            out["aliases"] = sorted(set(m.aliases))
        if m.autoload is not None:
            out["autoload"] = m.autoload
        return out

    @staticmethod
    def _settings(m: ModelSpec, model: Model) -> tuple[str, dict[str, Any]] | None:
        """The backend and saved settings the spec asks for (normalised as saving them would), or
        None when it leaves them as they are."""
        options = {**(m.settings or {}), **m.setting_fields()}
        backend, schema = settings.schema_for(model, m.backend() or None)
        if m.peft_adapters is not None:
            key = kind_named(backend).lora_option
            if key is None:
                raise InvalidSpec(
                    f"peft_adapters: the {backend} backend applies no LoRA when it loads",
                    hint="list the LoRA under adapters: and name it in deployment.adapter",
                )
            options[key] = [{"name": a.name, "weight": a.weight} for a in m.peft_adapters]
        if m.settings is None and not options:
            return None
        parsed = settings.validate(model, options, schema)
        saved: dict[str, Any] = parsed.model_dump(include=set(options))
        return backend, saved

    def _deployment_diff(self, name: str, m: ModelSpec) -> list[str]:
        assert m.deployment is not None
        wanted = self._wish(name, m, m.deployment)
        have = self.runtime.store.deployment(name)
        if have is None:
            return [f"deployment: - -> {wanted.replicas} replica(s)"]
        lines = _diff("deployment.", _compared(have), _compared(wanted))
        if have.jit:
            lines.insert(0, "deployment: loaded on request -> kept running")
        return lines

    @staticmethod
    def _wish(name: str, m: ModelSpec, d: DeploymentSpec) -> Deployment:
        return Deployment(model=name, **{**d.record_fields(), "backend": m.backend()})

    async def _apply(self, plan: _Plan) -> Outcome:
        m = plan.spec
        if plan.model is not None and not plan.changes:
            return Outcome(m.name, "unchanged")
        model = plan.model or await self._create(m)
        record = self._record(m)
        if plan.model is None:
            record.pop("category", None)  # given to the import
        if record:
            model = self.library.update(m.name, **record)
        for a in [*(m.peft_adapters or []), *(m.adapters or [])]:
            if model.adapter(a.name) is None and a.model is not None:
                model = await self._bind(model, a)
        wanted = self._settings(m, model)
        settings_changed = wanted is not None and {"backend": wanted[0], **wanted[1]} != _saved(model)
        if wanted is not None and settings_changed:
            model = self.library.put_settings(m.name, wanted[1], merge=False, backend=wanted[0])
        await self._deploy(m, settings_changed)
        return Outcome(m.name, "created" if plan.model is None else "updated", plan.changes)

    async def _create(self, m: ModelSpec) -> Model:
        source = source_of(m.model)
        kind = m.kind()
        if source.provider == "local":
            assert source.path is not None
            request = ImportRequest(
                path=source.path,
                name=m.name,
                description=m.description or "",
                category=kind.value if kind else None,
            )
            return await asyncio.to_thread(self.library.import_model, request)
        if source.provider == "server":
            assert source.url is not None
            url = source.url.rstrip("/")
            api, served = await asyncio.to_thread(probe, url, source.token)
            remote = RemoteRequest(
                url=url, api=api, served=served, remote_model=source.repository or served[0], name=m.name,
                description=m.description or "", category=kind.value if kind else None, api_key=source.token,
            )  # fmt: skip
            return self.library.add_remote(remote)
        if source.provider == "huggingface" and (cached := await self._from_cache(m, source)) is not None:
            return cached
        job = await self._pull(
            PullRequest(
                ref=ref_of(m.model), quantization=m.file_quantization(), name=m.name, token=source.token
            )
        )
        model = self.library.get(job)
        if kind is not None and model.category != kind.value:
            model = self.library.update(model.name, category=kind.value)
        return model

    async def _from_cache(self, m: ModelSpec, source: Source) -> Model | None:
        """The repo imported from Hugging Face's cache, where the spec asks for that and the
        cache holds it (None: not asked, not there); NotFound where only the cache may serve."""
        if not (source.cache_dir or source.local_files_only):
            return None
        assert source.repository is not None
        cache = hub_cache(source.cache_dir)
        found = cached_snapshot(source.repository, source.revision, cache)
        if found is None:
            if not source.local_files_only:
                return None  # downloaded as usual
            at = f"{source.repository}@{source.revision}" if source.revision else source.repository
            raise RepoNotFound(
                f"{at} is not in the Hugging Face cache at {cache}, and local_files_only is set",
                hint="download it there first (huggingface-cli download), or leave local_files_only out",
            )
        snapshot, commit = found
        path = snapshot / source.filename if source.filename else snapshot
        kind = m.kind()
        request = ImportRequest(
            path=str(path),
            name=m.name,
            description=m.description or "",
            category=kind.value if kind else None,
        )
        model = await asyncio.to_thread(self.library.import_model, request)
        return self.library.store.update_model(
            model.name, source_repo=source.repository, source_revision=commit
        )

    async def _bind(self, model: Model, a: AdapterSpec) -> Model:
        assert a.model is not None
        source = source_of(a.model)
        if source.provider == "local":
            assert source.path is not None
            return await asyncio.to_thread(self.library.add_adapter, model.name, source.path, a.name)
        await self._pull(PullRequest(ref=ref_of(a.model), base=model.name, name=a.name, token=source.token))
        return self.library.get(model.name)

    async def _pull(self, request: PullRequest) -> str:
        """Download and import; the name of what was imported."""
        job = await self.downloads.create(request)
        while job.state in ACTIVE:
            await asyncio.sleep(0.2)
            job = self.downloads.get(job.id)
        if job.state != "completed" or not job.models:
            raise InvalidSpec(
                f"the download of {request.ref} {job.state}: {job.error or 'nothing imported'}",
                hint=job.hint or "`modelyard downloads` lists the job with its error",
            )
        return job.models[0].split(":")[0]

    async def _deploy(self, m: ModelSpec, settings_changed: bool) -> None:
        name = m.name
        have = self.runtime.store.deployment(name)
        if m.deployment is None:
            if settings_changed and have is not None and self.runtime.is_loaded(name):
                await self.runtime.reload(name)  # its engines take the new settings
            return
        wish = self._wish(name, m, m.deployment)
        if wish.stopped:
            if have is not None and not have.stopped:
                await self.runtime.stop(name)
            await self.runtime.edit(wish)
            return
        if have is not None and _compared(have) == _compared(wish) and not have.jit and settings_changed:
            await self.runtime.reload(name)
            return
        await self.runtime.deploy(wish)

    # -- export --------------------------------------------------------------------------------

    def export(self) -> Spec:
        """The library and its deployments as a spec that apply makes again."""
        deployments = {d.model: d for d in self.runtime.store.deployments()}
        models = []
        for model in self.library.models():
            dep = deployments.get(model.name)
            kept = _spec_of(dep) if dep is not None and not dep.jit else None
            saved_for = model.settings.backend if model.settings else None
            named = kept is not None and kept.backend == saved_for
            models.append(
                ModelSpec(
                    name=model.name,
                    model=_where(model),
                    category=model.category,
                    driver=saved_for if saved_for != settings.default_backend(model) and not named else None,
                    description=model.description or None,
                    aliases=sorted(model.aliases) or None,
                    autoload=model.autoload or None,
                    settings=dict(model.settings.options)
                    if model.settings and model.settings.options
                    else None,
                    adapters=[AdapterSpec(name=a.name, model=a.path) for a in model.adapters] or None,
                    deployment=kept,
                )
            )
        routes = [
            RouteSpec(
                name=r.name,
                targets=[TargetSpec(model=t.model, weight=t.weight) for t in r.targets],
                description=r.description or None,
            )
            for r in self.routes.all()
        ]
        return Spec(models=models, routes=routes)


def _targets(r: RouteSpec) -> list[Target]:
    return [Target(t.model, t.weight) for t in r.targets]


def _shown(targets: list[Target]) -> str:
    return ", ".join(f"{t.model}={t.weight}" for t in targets)


def _where(model: Model) -> str | Source:
    """Where a library model is, as a spec says it: its path, or the server it is (its key is
    not written out: give it as ${env.NAME})."""
    if model.format != REMOTE:
        return model.path
    return Source(provider="server", url=url_of(model), repository=str(model.facts.get("remote_model")))


def _saved(model: Model) -> dict[str, Any]:
    """The saved settings with the backend they are for."""
    return {"backend": settings.backend_of(model), **(model.settings.options if model.settings else {})}


def _compared(d: Deployment) -> dict[str, Any]:
    """A record's fields that a spec says (the replicas of one that scales itself are its own)."""
    fields = deployment_fields(d, DeploymentSpec.model_fields)
    if d.autoscale is not None:
        fields.pop("replicas")
    return fields


def _spec_of(d: Deployment) -> DeploymentSpec:
    return DeploymentSpec(**_compared(d))
