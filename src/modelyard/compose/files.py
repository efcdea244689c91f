"""model-compose's files: ``component:`` (one), or ``components:`` (each with its ``id``), and a
``workflow:`` (or ``workflows:``, each with its ``id``) of jobs over them, read as written,
with the line of each field in an error; ``${env.NAME}`` filled from the reader's environment
and relative paths resolved against the file's folder, where the file is read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from modelyard.compose.component import ModelComponent
from modelyard.compose.http import HttpClientComponent
from modelyard.compose.vectors import VectorStoreComponent
from modelyard.compose.workflows import Workflow
from modelyard.deployments.spec import Spec, read_yaml, resolved
from modelyard.errors import InvalidSpec

KINDS = ("model", "vector-store", "http-client")


def _kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"type {kind}"


# by its type; the tag names the type in an error's location, which reading the file leaves out
Component = Annotated[
    Annotated[ModelComponent, Tag("type model")]
    | Annotated[VectorStoreComponent, Tag("type vector-store")]
    | Annotated[HttpClientComponent, Tag("type http-client")],
    Discriminator(_kind),
]
AnyComponent = ModelComponent | VectorStoreComponent | HttpClientComponent


class ComposeFile(BaseModel):
    """A model-compose file."""

    model_config = ConfigDict(extra="forbid", title="model-compose file")

    component: Component | None = None
    components: list[Component] | None = Field(None, description="each with its id")
    workflow: Workflow | None = None
    workflows: list[Workflow] | None = Field(None, description="each with its id")

    @model_validator(mode="before")
    @classmethod
    def _kinds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [("component", data.get("component"))]
        given += [(f"components: item {i + 1}", c) for i, c in enumerate(data.get("components") or [])]
        for where, c in given:
            kind = c.get("type") if isinstance(c, dict) else None
            if kind == "http-server":
                raise ValueError(
                    f"{where}: type 'http-server' starts the file's own commands (manage), which modelyard "
                    "does not run: start that server, then ask it with type http-client"
                )
            if c is not None and kind not in KINDS:
                raise ValueError(
                    f"{where}: type {kind!r} is not a component modelyard runs: {', '.join(KINDS)}"
                )
        return data

    @model_validator(mode="after")
    def _whole(self) -> ComposeFile:
        if self.component is None and not self.components:
            raise ValueError("it has no component: write `component:` with its type, task and model")
        ids = [c.id for c in self.components or []]
        if None in ids:
            raise ValueError("components: each has an id")
        if len(set(ids)) != len(ids):
            raise ValueError("components: an id is given twice")
        if self.workflow is not None and self.workflows:
            raise ValueError("workflows: a file has a workflow or workflows, not both")
        names = [w.id for w in self.workflows or []]
        if None in names or len(set(names)) != len(names):
            raise ValueError("workflows: each has an id of its own")
        named = {c.id for c in self.every() if c.id}
        for w in self.every_workflow():
            for job in w.steps():
                if job.component not in named:
                    raise ValueError(
                        f"workflow: job {job.id} runs {job.component!r}, which the file does not have"
                    )
        return self

    def every(self) -> list[AnyComponent]:
        return [*([self.component] if self.component else []), *(self.components or [])]

    def every_workflow(self) -> list[Workflow]:
        return [*([self.workflow] if self.workflow else []), *(self.workflows or [])]

    def by_id(self, name: str) -> AnyComponent:
        """The component a job names."""
        return next(c for c in self.every() if c.id == name)  # checked when read

    def chosen(self, name: str | None) -> AnyComponent:
        """The component named ``name``, or the file's only one."""
        every = self.every()
        if name is None:
            if len(every) == 1:
                return every[0]
            raise InvalidSpec(
                "the file has several components", hint=f"name one: {', '.join(str(c.id) for c in every)}"
            )
        for c in every:
            if c.id == name or (c.id is None and c.name() == name):
                return c
        raise InvalidSpec(
            f"the file has no component {name!r}", hint=", ".join(c.id or c.name() for c in every)
        )

    def chosen_workflow(self, name: str | None) -> Workflow | None:
        """The workflow named ``name``, or the file's only one; None for a file with none."""
        flows = self.every_workflow()
        if name is None:
            if len(flows) > 1:
                raise InvalidSpec(
                    "the file has several workflows", hint=f"name one: {', '.join(str(w.id) for w in flows)}"
                )
            return flows[0] if flows else None
        for w in flows:
            if w.id == name:
                return w
        raise InvalidSpec(
            f"the file has no workflow {name!r}", hint=", ".join(str(w.id) for w in flows) or "it has none"
        )


def load(
    text: str, origin: str, *, base: Path | None, environ: Mapping[str, str] | None = None
) -> ComposeFile:
    """A model-compose file from YAML (see the module's doc); InvalidSpec names the file, the
    line and the field."""
    read, fail = read_yaml(text, origin, ComposeFile, environ=environ, empty="it holds `component:`")

    def placed(c: AnyComponent, where: tuple[str | int, ...]) -> AnyComponent:
        if not isinstance(c, ModelComponent):
            return c

        def failed(_i: int, field: str, why: str) -> None:
            fail((*where, field), why)

        (m,) = resolved(Spec(models=[c.spec(c.name())]), base, failed).models
        return c.model_copy(update={"model": m.model, "peft_adapters": m.peft_adapters})

    component = placed(read.component, ("component",)) if read.component is not None else None
    components = [placed(c, ("components", i)) for i, c in enumerate(read.components or [])]
    return read.model_copy(update={"component": component, "components": components or read.components})
