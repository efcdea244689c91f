"""model-compose's files: ``component:`` (one), or ``components:`` (each with its ``id``), read
as written, with the line of each field in an error; ``${env.NAME}`` filled from the reader's
environment and relative paths resolved against the file's folder, where the file is read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.compose.component import ModelComponent
from modelyard.deployments.spec import Spec, read_yaml, resolved
from modelyard.errors import InvalidSpec


class ComposeFile(BaseModel):
    """A model-compose file."""

    model_config = ConfigDict(extra="forbid", title="model-compose file")

    component: ModelComponent | None = None
    components: list[ModelComponent] | None = Field(None, description="each with its id")
    workflow: Any = Field(None, description="not run yet")

    @model_validator(mode="after")
    def _some(self) -> ComposeFile:
        if self.workflow is not None:
            raise ValueError("workflow: modelyard runs a file's components, not its workflows yet")
        if self.component is None and not self.components:
            raise ValueError("it has no component: write `component:` with its type, task and model")
        ids = [c.id for c in self.components or []]
        if None in ids:
            raise ValueError("components: each has an id")
        if len(set(ids)) != len(ids):
            raise ValueError("components: an id is given twice")
        return self

    def chosen(self, name: str | None) -> ModelComponent:
        """The component named ``name``, or the file's only one."""
        every = [*([self.component] if self.component else []), *(self.components or [])]
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


def load(
    text: str, origin: str, *, base: Path | None, environ: Mapping[str, str] | None = None
) -> ComposeFile:
    """A model-compose file from YAML (see the module's doc); InvalidSpec names the file, the
    line and the field."""
    read, fail = read_yaml(text, origin, ComposeFile, environ=environ, empty="it holds `component:`")

    def placed(c: ModelComponent, where: tuple[str | int, ...]) -> ModelComponent:
        def failed(_i: int, field: str, why: str) -> None:
            fail((*where, field), why)

        (m,) = resolved(Spec(models=[c.spec(c.name())]), base, failed).models
        return c.model_copy(update={"model": m.model, "peft_adapters": m.peft_adapters})

    component = placed(read.component, ("component",)) if read.component is not None else None
    components = [placed(c, ("components", i)) for i, c in enumerate(read.components or [])]
    return read.model_copy(update={"component": component, "components": components or read.components})
