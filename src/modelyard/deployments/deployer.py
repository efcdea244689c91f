"""One-step deploy: from a hub reference, a local path or a model of the library to a running
deployment. What is missing is downloaded and imported, the settings are saved, the deployment
starts; a deployment that does not start leaves the saved settings as they were."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from modelyard.catalog.records import Autoscale, Deployment, Download, Model, Scheduling
from modelyard.deployments.spec import SchedulingChanges
from modelyard.errors import InvalidInput, ModelyardError, NotFound
from modelyard.formats.files import usable_path
from modelyard.hub.jobs import Downloads, JobView, PullRequest
from modelyard.hub.refs import Source, is_local
from modelyard.library import Library
from modelyard.library.requests import ImportRequest
from modelyard.runtime.runtime import Fits, Runtime

log = logging.getLogger(__name__)


@dataclass
class DeployRequest:
    """What to deploy (one of model, path, ref) and how."""

    model: str | None = None  # a model of the library
    path: str | None = None  # a model file or folder on the server's disk
    ref: str | None = None  # anything `pull` takes
    source: Source | None = None
    quantization: str | None = None
    files: list[str] = field(default_factory=list)
    everything: bool = False  # every file of the repo
    name: str | None = None  # the model's name, for an import or a download
    replicas: int = 1
    backend: str = ""
    backend_version: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # saved as the model's settings
    restart: bool = True
    adapter: str | None = None
    scheduling: Scheduling = field(default_factory=Scheduling)
    autoscale: Autoscale | None = None

    def deployment(self, model: str) -> Deployment:
        return Deployment(
            model=model,
            backend=self.backend,
            replicas=self.replicas,
            adapter=self.adapter,
            env=dict(self.env),
            backend_version=self.backend_version,
            args=list(self.args),
            restart=self.restart,
            scheduling=replace(self.scheduling),
            autoscale=self.autoscale,
        )


@dataclass
class Deployed:
    """A deployment that serves, or the download that starts it once its files are in."""

    deployment: Deployment | None = None
    download: JobView | None = None


class Deployer:
    def __init__(self, library: Library, runtime: Runtime, downloads: Downloads) -> None:
        self.library = library
        self.runtime = runtime
        self.downloads = downloads
        downloads.deployer = self.after_download

    async def deploy(self, request: DeployRequest, *, force: bool = False, by: str | None = None) -> Deployed:
        given = [k for k in ("model", "path", "ref") if getattr(request, k)]
        if len(given) != 1:
            raise InvalidInput("name one of model, path or ref", hint="what to deploy")
        if request.ref is not None and is_local(request.ref):
            request = replace(request, path=request.ref, ref=None)
        if request.model is not None:
            model = self.library.get(request.model)
        elif request.path is not None:
            model = self.imported(request.path, request.name)
        else:
            assert request.ref is not None
            job = await self.downloads.create(
                PullRequest(
                    ref=request.ref,
                    source=request.source,
                    quantization=request.quantization,
                    files=request.files,
                    everything=request.everything,
                    name=request.name,
                    deploy=asdict(request),
                )
            )
            if job.state != "completed":
                return Deployed(download=job)  # after_download deploys it
            model = self.library.get(job.models[0])
        return Deployed(deployment=await self.start(model, request, force=force, by=by))

    async def check(self, request: DeployRequest) -> Fits:
        """Whether deploying ``request`` would run now, and where, with its settings as given:
        nothing is saved or started. It checks a model of the library (or a path it holds)."""
        name = request.model
        if name is None and request.path is not None:
            known = self._known(request.path)
            name = known.name if known is not None else None
        if name is None:
            raise InvalidInput(
                "a check takes a model of the library", hint="import or pull it first, then check it by name"
            )
        model = self.library.with_settings(name, request.settings, backend=request.backend or None)
        return await self.runtime.check(request.deployment(name), model)

    def imported(self, path: str, name: str | None) -> Model:
        """The model at ``path``: the library's, else imported now."""
        known = self._known(path)
        if known is not None:
            return known
        return self.library.import_model(ImportRequest(path=str(usable_path(path)), name=name))

    def _known(self, path: str) -> Model | None:
        """The library's model at ``path``; a path no file system could hold is refused here."""
        return self.library.store.find_by_path(os.path.abspath(usable_path(path)))

    async def start(
        self, model: Model, request: DeployRequest, *, force: bool = False, by: str | None = None
    ) -> Deployment:
        """Save the settings (for the backend asked for), start the deployment; the settings go
        back when it does not start."""
        if request.settings:
            self.library.put_settings(model.name, request.settings, backend=request.backend or None)
        try:
            return await self.runtime.deploy(request.deployment(model.name), force=force, by=by)
        except ModelyardError:
            if request.settings:
                self._restore(model)
            raise

    def _restore(self, before: Model) -> None:
        """Put back the settings ``before`` had."""
        if before.settings is None:
            self.library.put_settings(before.name, {}, merge=False)
        else:
            self.library.put_settings(
                before.name, before.settings.options, merge=False, backend=before.settings.backend
            )

    async def after_download(self, job: Download, models: list[str]) -> str:
        """Deploy what a download brought (its first model); what to say about it."""
        assert job.deploy is not None
        saved = job.deploy
        scheduling = Scheduling(**saved.get("scheduling", {}))
        request = DeployRequest(**{**saved, "ref": None, "model": models[0], "scheduling": scheduling})
        try:
            dep = await self.start(self.library.get(models[0]), request)
        except ModelyardError as e:
            log.warning("could not deploy %s: %s", models[0], e)
            return f"not deployed: {e.message}" + (f" ({e.hint})" if e.hint else "")
        return f"deployed {dep.model} ({dep.replicas} replica{'s' if dep.replicas != 1 else ''})"

    async def edit(
        self,
        name: str,
        changes: dict[str, Any],
        settings: dict[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> Deployment:
        """Change a deployment's fields (and its model's settings): a running one rolls to them."""
        dep = self.runtime.store.deployment(name)
        if dep is None:
            raise NotFound(f"{name!r} has no deployment", hint=f"`modelyard deploy {name}` makes one")
        model = self.library.get(name)
        flat = {k: changes.pop(k) for k in list(changes) if k in SchedulingChanges.model_fields}
        if flat:
            changes["scheduling"] = SchedulingChanges(**flat).applied(dep.scheduling)
        wish = replace(dep, **changes)
        if settings:
            self.library.put_settings(name, settings, backend=wish.backend or None)
        try:
            return await self.runtime.edit(wish, force=force)
        except ModelyardError:
            if settings:
                self._restore(model)
            raise
