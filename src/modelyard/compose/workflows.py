"""model-compose's workflows: jobs, each a component (and a vector store's action) given an
input made from the workflow's input and earlier jobs' outputs
(``${jobs.embed-query.output.query_vector}``), run one after another in the order their
``depends_on`` allows, the file's order otherwise. A workflow of one component writes it in
place of ``jobs``. What a workflow gives is its last job's output."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.compose import expressions
from modelyard.compose.names import Id
from modelyard.errors import InvalidInput

# a component run: (component id, action or None, its input) -> its output
Run = Callable[[str, str | None, dict[str, Any]], Awaitable[Any]]


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    component: Id = Field(description="a component's id")
    action: Id | None = Field(None, description="a vector store's action")
    input: Any = Field(None, description="what the component is given; default: the workflow's input")
    output: Any = Field(
        None, description="what the job gives, from ${result}; default: the component's output"
    )
    depends_on: list[Id] = Field(default_factory=list)


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    title: str | None = None
    description: str | None = None
    jobs: list[Job] | None = None
    component: Id | None = Field(None, description="a workflow of one component: its id")
    action: Id | None = None
    input: Any = None
    output: Any = None

    @model_validator(mode="after")
    def _runnable(self) -> Workflow:
        if (self.jobs is None) == (self.component is None):
            raise ValueError("jobs: a workflow has jobs, or one component in their place")
        jobs = self.steps()
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            raise ValueError("jobs: a job id is given twice")
        for j in jobs:
            unknown = [d for d in j.depends_on if d not in ids]
            if unknown:
                raise ValueError(f"jobs: {j.id} depends on {', '.join(unknown)}, which it does not have")
            expressions.readable({f"jobs: {j.id}": [j.input, j.output]})
        self.ordered()  # a cycle is refused here
        return self

    def steps(self) -> list[Job]:
        if self.jobs is not None:
            return self.jobs
        assert self.component is not None
        job = Job(
            id=self.component,
            component=self.component,
            action=self.action,
            input=self.input,
            output=self.output,
        )
        return [job]

    def ordered(self) -> list[Job]:
        """The jobs in an order that runs each after those it depends on (the file's order
        where that leaves a choice)."""
        left, done, out = list(self.steps()), set[str](), []
        while left:
            ready = next((j for j in left if set(j.depends_on) <= done), None)
            if ready is None:
                raise ValueError(f"jobs: {', '.join(j.id for j in left)} depend on each other")
            left.remove(ready)
            done.add(ready.id)
            out.append(ready)
        return out


async def run(workflow: Workflow, given: Mapping[str, Any], component: Run) -> Any:
    """Each job in turn; the last one's output."""
    jobs: dict[str, dict[str, Any]] = {}
    last: Any = None
    for job in workflow.ordered():
        scope = {"input": dict(given), "jobs": jobs, "env": os.environ}
        asked = expressions.render(job.input if job.input is not None else "${input}", scope)
        if not isinstance(asked, Mapping):
            raise InvalidInput(f"job {job.id}: its input is {asked!r}, not a mapping of names to values")
        try:
            result = await component(job.component, job.action, dict(asked))
        except InvalidInput as e:
            e.message = f"job {job.id}: {e.message}"
            raise
        last = (
            result
            if job.output is None
            else expressions.render(job.output, {**scope, "result": result, "output": result})
        )
        jobs[job.id] = {"output": last}
    return last
