"""The declarative spec: models as the model-compose manual declares them (type, task, driver,
model with its provider, device, precision, quantization, batch size, PEFT adapters with
weights), with modelyard's own fields (name, category, settings, aliases, autoload, adapters, a
deployment). Read from YAML with the line of every field, so that an error names the file, the
line and the field."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelyard.catalog.records import GPU_REF, Autoscale, Deployment, Scheduling
from modelyard.categories import Category
from modelyard.errors import InvalidRef, InvalidSpec
from modelyard.hub.refs import Source as HubSource
from modelyard.hub.refs import is_local, parse_ref

# model-compose's tasks -> modelyard's categories
TASKS: dict[str, Category] = {
    "text-generation": Category.CHAT,
    "chat-completion": Category.CHAT,
    "text-classification": Category.CLASSIFICATION,
    "text-embedding": Category.EMBEDDING,
    "text-rerank": Category.RERANK,
    "image-to-text": Category.CAPTIONING,  # BLIP, GIT, ViT-GPT2
    "image-generation": Category.IMAGE,
    "image-upscale": Category.UPSCALE,
    "face-embedding": Category.FACE,
}
# model-compose's drivers -> modelyard's backends ("": the registry chooses, as huggingface does)
DRIVERS: dict[str, str] = {
    "huggingface": "",
    "transformers": "transformers",
    "sentence-transformers": "sentence-transformers",
    "diffusers": "diffusers",
    "llamacpp": "llama.cpp",
    "llama-cpp": "llama.cpp",
    "llama.cpp": "llama.cpp",
    "llama-cpp-python": "llama-cpp-python",
    "vllm": "vllm",
}
# quantizations that are a setting of the Python backends; any other names a GGUF file of a repo
LOAD_QUANTIZATIONS = ("none", "int8", "int4", "nf4")
PROVIDER_OF = {HubSource.HF: "huggingface", HubSource.MODELSCOPE: "modelscope", HubSource.OLLAMA: "ollama"}
ENV = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")


class Source(BaseModel):
    """model-compose's ``model:`` as a mapping: a provider and where on it."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["huggingface", "modelscope", "ollama", "local", "server"]
    repository: str | None = Field(
        None,
        description="a hub's repo: org/name (ollama: name); server: which of its models (default: its first)",
    )
    url: str | None = Field(None, description="server: a server that already runs (OpenAI-compatible or TGI)")
    revision: str | None = Field(None, description="a branch, tag or commit (ollama: the tag)")
    filename: str | None = Field(None, description="one file of the repo")
    token: str | None = Field(
        None, description="a hub token for this model, or a server's API key, such as ${env.HF_TOKEN}"
    )
    path: str | None = Field(None, description="local: the model file or folder")
    format: str | None = Field(None, description="local: gguf, safetensors, ... (detected anyway)")
    cache_dir: str | None = Field(
        None,
        description="huggingface: a Hugging Face cache to take the repo from when it holds it "
        "(default: HF_HUB_CACHE, else ~/.cache/huggingface)",
    )
    local_files_only: bool = Field(
        False, description="huggingface: take the repo from that cache only, never download it"
    )

    @model_validator(mode="after")
    def _where(self) -> Source:
        if self.provider == "local":
            if not self.path or self.repository:
                raise ValueError("a local model takes a path (and no repository)")
        elif self.provider == "server":
            if not self.url or self.path:
                raise ValueError("a server takes a url (and no path)")
        elif not self.repository or self.path:
            raise ValueError(f"a {self.provider} model takes a repository (and no path)")
        if (self.cache_dir or self.local_files_only) and self.provider != "huggingface":
            raise ValueError("cache_dir and local_files_only are a huggingface model's")
        return self

    def ref(self) -> str:
        """What `pull` takes for it."""
        assert self.repository is not None
        if self.provider == "ollama":
            return f"ollama:{self.repository}" + (f":{self.revision}" if self.revision else "")
        prefix = "ms" if self.provider == "modelscope" else "hf"
        text = f"{prefix}:{self.repository}"
        if self.filename:
            text += f"/{self.filename}"
        return text + (f"@{self.revision}" if self.revision else "")


def source_of(model: str | Source) -> Source:
    """model-compose's path rule: a string starting with /, ./, ../ or ~ is a local path;
    anything else is a hub repo, written as `pull` takes it (InvalidRef when it is not one)."""
    if isinstance(model, Source):
        return model
    if is_local(model):
        return Source(provider="local", path=model)
    ref = parse_ref(model)
    return Source(
        provider=PROVIDER_OF[ref.source], repository=ref.repo, revision=ref.revision, filename=ref.file
    )


def ref_of(model: str | Source) -> str:
    """What `pull` takes for a hub model: the string as written, or the mapping's reference."""
    return model if isinstance(model, str) else model.ref()


class AdapterSpec(BaseModel):
    """A LoRA: bound to the model in the library (from the library, a path or a hub repo)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["lora"] = "lora"
    name: str = Field(description="its name in the library")
    model: str | Source | None = Field(None, description="where it comes from; absent: already bound")
    weight: float = Field(1.0, ge=0, le=10, description="peft_adapters: 0 = off, 1 = full effect")


LABEL = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"


def _gpu(text: str) -> str:
    if GPU_REF.match(text) is None:
        raise ValueError(f"{text!r} is not a GPU: write WORKER:INDEX, e.g. w1:0")
    return text


def _label(text: str) -> str:
    if re.match(LABEL, text) is None:
        raise ValueError(f"{text!r} is not a label name: letters, digits and . _ / -")
    return text


Selector = dict[Annotated[str, AfterValidator(_label)], str]
Gpus = list[Annotated[str, AfterValidator(_gpu)]]


class SchedulingFields(BaseModel):
    """Where a deployment's instances may go (records.Scheduling, flat)."""

    model_config = ConfigDict(extra="forbid")

    placement: Literal["spread", "binpack"] = Field(
        "spread", description="spread: over the nodes; binpack: fill the most used node that fits first"
    )
    selector: Selector = Field(default_factory=dict, description="labels a worker must have (zone: a)")
    gpus: Gpus = Field(
        default_factory=list, description="GPUs chosen by hand, WORKER:INDEX (INDEX alone on one machine)"
    )
    cpu_offload: bool = Field(True, description="part of the layers on the CPU when the GPUs lack room")
    distributed: bool = Field(False, description="one instance over several workers (GGUF on llama.cpp)")

    def scheduling(self) -> Scheduling:
        return Scheduling(
            self.placement, dict(self.selector), list(self.gpus), self.cpu_offload, self.distributed
        )


class SchedulingChanges(BaseModel):
    """SchedulingFields to change; absent ones stay as they are."""

    placement: Literal["spread", "binpack"] | None = None
    selector: Selector | None = Field(None, description="labels a worker must have; {} for any")
    gpus: Gpus | None = Field(None, description="WORKER:INDEX each; [] for the scheduler's choice")
    cpu_offload: bool | None = None
    distributed: bool | None = None

    def applied(self, to: Scheduling) -> Scheduling:
        changes = self.model_dump(include=set(SchedulingChanges.model_fields), exclude_none=True)
        return SchedulingFields(**{**scheduling_fields(to), **changes}).scheduling()


def scheduling_fields(s: Scheduling) -> dict[str, Any]:
    """A Scheduling record as SchedulingFields' flat fields."""
    return {
        "placement": s.policy, "selector": dict(s.selector), "gpus": list(s.gpus),
        "cpu_offload": s.cpu_offload, "distributed": s.distributed,
    }  # fmt: skip


class AutoscaleFields(BaseModel):
    """A deployment's replicas between ``least`` and ``most`` (records.Autoscale)."""

    model_config = ConfigDict(extra="forbid")

    least: int = Field(1, ge=0, le=64, description="replicas at least (0: none while it is idle)")
    most: int = Field(ge=1, le=64, description="replicas at most")
    wait: float = Field(2.0, gt=0, description="seconds a request waits for a slot before one more starts")
    idle: float = Field(
        300.0, gt=0, description="seconds one fewer could have served it all before one stops"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleFields:
        if self.least > self.most:
            raise ValueError(f"least ({self.least}) is more than most ({self.most})")
        return self

    def record(self) -> Autoscale:
        return Autoscale(self.least, self.most, self.wait, self.idle)


class DeploymentFields(SchedulingFields):
    """A deployment as the deployment manual has it (a spec's and the API's)."""

    replicas: int = Field(1, ge=0, le=64, description="its instances (autoscale: those it starts with)")
    autoscale: AutoscaleFields | None = Field(None, description="its replicas follow its requests")
    backend: str = Field("", description="a backend that takes the model; empty: the registry chooses")
    backend_version: str | None = Field(None, description="a build installed beside the default one")
    args: list[str] = Field(default_factory=list, description="more engine arguments: --flag, --key=value")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of its engines")
    restart: bool = Field(True, description="start an engine again when it exits")
    adapter: str | None = Field(None, description="the LoRA it serves with (llama.cpp: one)")

    def record_fields(self, exclude: set[str] | None = None) -> dict[str, Any]:
        """The fields as a Deployment record has them (the scheduling ones in one)."""
        flat = set(SchedulingFields.model_fields) | {"autoscale"}
        autoscale = self.autoscale.record() if self.autoscale is not None else None
        fields = {**self.model_dump(exclude=flat | (exclude or set())), "scheduling": self.scheduling()}
        return fields if "autoscale" in (exclude or set()) else {**fields, "autoscale": autoscale}


def deployment_fields(d: Deployment, names: Iterable[str]) -> dict[str, Any]:
    """A record's fields by the flat names of DeploymentFields."""
    flat = scheduling_fields(d.scheduling)
    flat["autoscale"] = asdict(d.autoscale) if d.autoscale is not None else None
    return {name: flat[name] if name in flat else getattr(d, name) for name in names}


class DeploymentSpec(DeploymentFields):
    """Keep the model running; the fields are those of a Deployment record."""

    stopped: bool = Field(False, description="kept, with no instance running")


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="its name in the library and in requests")
    type: Literal["model"] = "model"
    model: str | Source = Field(description="a local path (/, ./, ../, ~) or a hub repo, or a mapping")
    task: str | None = Field(None, description=f"model-compose's task: {', '.join(TASKS)}")
    category: Category | None = Field(None, description="modelyard's category (detected when absent)")
    driver: str | None = Field(
        None,
        description=f"model-compose's driver: the backend of its settings and deployment ({', '.join(DRIVERS)})",
    )
    device: str | None = Field(None, description="auto, cpu, cuda, mps (a setting)")
    precision: str | None = Field(None, description="auto, float32, float16, bfloat16 (a setting)")
    quantization: str | None = Field(
        None, description="a GGUF repo's quantization (Q4_K_M), or int8, int4, nf4 (a setting)"
    )
    batch_size: int | None = Field(None, ge=1, description="a setting")
    low_cpu_mem_usage: bool | None = Field(None, description="a setting (transformers)")
    peft_adapters: list[AdapterSpec] | None = Field(
        None, description="LoRAs applied when it loads, each with a weight (model-compose)"
    )
    adapters: list[AdapterSpec] | None = Field(None, description="LoRAs bound to it, applied on request")
    description: str | None = None
    aliases: list[str] | None = None
    autoload: bool | None = Field(None, description="load on the first request")
    settings: dict[str, Any] | None = Field(None, description="its backend's options: n_ctx, ...")
    deployment: DeploymentSpec | None = Field(None, description="keep it running (absent: left as it is)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        # "field: why" names the field for load()
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one modelyard runs: {', '.join(TASKS)}")
        if self.task is not None and self.category is not None and TASKS[self.task] != self.category:
            raise ValueError(
                f"category: task {self.task} is category {TASKS[self.task]}, not {self.category}"
            )
        if self.driver is not None:
            if self.driver not in DRIVERS:
                raise ValueError(f"driver: {self.driver!r} is not one modelyard has: {', '.join(DRIVERS)}")
            if (
                self.deployment is not None
                and self.deployment.backend
                and self.deployment.backend != DRIVERS[self.driver]
            ):
                raise ValueError(
                    f"driver: {self.driver} and deployment.backend {self.deployment.backend} differ"
                )
        names = [a.name for a in [*(self.peft_adapters or []), *(self.adapters or [])]]
        if len(names) != len(set(names)):
            raise ValueError("adapters: an adapter is named twice")
        return self

    def kind(self) -> Category | None:
        return self.category or (TASKS[self.task] if self.task else None)

    def backend(self) -> str:
        if self.deployment is not None and self.deployment.backend:
            return self.deployment.backend
        return DRIVERS[self.driver] if self.driver else ""

    def file_quantization(self) -> str | None:
        """The quantization that picks a file of a GGUF repo."""
        q = self.quantization
        return q if q is not None and q.lower() not in LOAD_QUANTIZATIONS else None

    def setting_fields(self) -> dict[str, Any]:
        """The model-compose fields that are settings of the backend."""
        fields: dict[str, Any] = {
            "device": self.device,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "low_cpu_mem_usage": self.low_cpu_mem_usage,
        }
        if self.quantization is not None and self.quantization.lower() in LOAD_QUANTIZATIONS:
            fields["quantization"] = self.quantization.lower()
        return {k: v for k, v in fields.items() if v is not None}


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a model of the library or of this spec (a server: provider server)")
    weight: int = Field(1, ge=0, le=1000, description="its share of the requests; 0: a fallback only")


class RouteSpec(BaseModel):
    """A model route: a name clients ask for, sent to its targets by weight, falling back to
    the next in order where one cannot answer."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="what clients ask for, as a model")
    targets: list[TargetSpec] = Field(min_length=1)
    description: str | None = None


class Spec(BaseModel):
    """A modelyard spec: `modelyard apply -f FILE` makes the library, the deployments and the
    routes so."""

    model_config = ConfigDict(extra="forbid", title="modelyard spec")

    models: list[ModelSpec] = Field(default_factory=list)
    routes: list[RouteSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Spec:
        names = [m.name for m in self.models] + [r.name for r in self.routes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"named twice: {', '.join(twice)}")
        return self


@functools.cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema of the format, for editors (yaml-language-server, VS Code); made once."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# -- reading YAML -------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


def _lines(node: yaml.Node, loc: Loc, found: dict[Loc, int]) -> None:
    found[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found[(*loc, str(key.value))] = key.start_mark.line + 1
            _lines(value, (*loc, str(key.value)), found)
            found[(*loc, str(key.value))] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*loc, i), found)


def _line(lines: dict[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _substitute(value: Any, loc: Loc, environ: Mapping[str, str], fail: Any) -> Any:
    if isinstance(value, str):

        def var(m: re.Match[str]) -> str:
            if m.group(1) not in environ:
                fail(loc, f"the environment variable {m.group(1)} is not set")
            return environ[m.group(1)]

        return ENV.sub(var, value)
    if isinstance(value, dict):
        return {k: _substitute(v, (*loc, str(k)), environ, fail) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), environ, fail) for i, v in enumerate(value)]
    return value


Fail = Callable[[Loc, str], NoReturn]
Schema = TypeVar("Schema", bound=BaseModel)


def read_yaml(
    text: str, origin: str, schema: type[Schema], *, environ: Mapping[str, str] | None = None, empty: str = ""
) -> tuple[Schema, Fail]:
    """``text`` (YAML) read as ``schema``, ``${env.NAME}`` filled from ``environ``; InvalidSpec
    names the file (``origin``), the line and the field. Also the way to fail at a field later."""
    environ = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise InvalidSpec(f"{where}: not YAML: {getattr(e, 'problem', None) or e}") from None
    if node is None or data is None:
        raise InvalidSpec(f"{origin}: the file is empty", hint=empty or None)
    lines: dict[Loc, int] = {}
    _lines(node, (), lines)

    def fail(loc: Loc, message: str) -> NoReturn:
        line = _line(lines, loc)
        raise InvalidSpec(f"{origin}:{line}: {_field(loc) or 'the file'}: {message}")

    data = _substitute(data, (), environ, fail)
    try:
        return schema.model_validate(data), fail
    except ValidationError as e:
        first = max(e.errors(), key=lambda err: len(err["loc"]))  # the most precise
        # not a field: which of a union's kinds was tried ("str", "Source", a tag such as "type model")
        loc = tuple(
            p for p in first["loc"] if not (isinstance(p, str) and (p in ("str", "Source") or " " in p))
        )
        message = first["msg"].removeprefix("Value error, ")
        named = re.match(r"(\w+): (.*)", message, re.S)
        if named and (*loc, named.group(1)) in lines:
            loc, message = (*loc, named.group(1)), named.group(2)
        fail(loc, message)


def load(
    text: str, origin: str = "<spec>", *, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> Spec:
    """A spec from YAML: ``${env.NAME}`` filled from ``environ``, relative paths resolved against
    ``base`` (the file's folder), ``~`` expanded. InvalidSpec names the file, line and field."""
    spec, fail = read_yaml(text, origin, Spec, environ=environ, empty="it lists models: under `models:`")
    return resolved(spec, base, lambda i, field, why: fail(("models", i, field), why))


def _local(path: str, base: Path | None) -> str:
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        return os.path.normpath(expanded)
    if base is None:
        raise ValueError(f"{path} is relative: the spec's folder is not known here")
    return os.path.normpath(base / expanded)


def resolved(spec: Spec, base: Path | None, fail: Any = None) -> Spec:
    """``spec`` with its local paths absolute (relative ones against ``base``)."""

    def fix(model: str | Source | None, i: int, field: str) -> str | Source | None:
        if model is None:
            return None
        try:
            source = source_of(model)
        except InvalidRef as e:
            if fail is None:
                raise InvalidSpec(f"models[{i}].{field}: {e.message}", hint=e.hint) from None
            fail(i, field, e.message)
            raise
        if source.provider != "local":
            return model
        assert source.path is not None
        try:
            path = _local(source.path, base)
        except ValueError as e:
            if fail is None:
                raise InvalidSpec(f"models[{i}].{field}: {e}", hint="give absolute paths") from None
            fail(i, field, str(e))
            raise
        return path if isinstance(model, str) else source.model_copy(update={"path": path})

    out = []
    for i, m in enumerate(spec.models):
        out.append(
            m.model_copy(
                update={
                    "model": fix(m.model, i, "model"),
                    "peft_adapters": [
                        a.model_copy(update={"model": fix(a.model, i, "peft_adapters")})
                        for a in m.peft_adapters
                    ]
                    if m.peft_adapters is not None
                    else None,
                    "adapters": [
                        a.model_copy(update={"model": fix(a.model, i, "adapters")}) for a in m.adapters
                    ]
                    if m.adapters is not None
                    else None,
                }
            )
        )
    return Spec(models=out, routes=spec.routes)


def _pruned(value: Any) -> Any:
    """``value`` without the nulls of its mappings (at any depth): a null is the default."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def dump(spec: Spec) -> str:
    """The spec as YAML, without what is left at its default."""
    data = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    for m in data.get("models", []):
        if "deployment" in m:
            m["deployment"] = m["deployment"] or {}
        if "settings" in m:
            m["settings"] = _pruned(m["settings"])
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text
