"""Creations: export jobs. Each runs `modelyard.create.export` in the transformers environment,
in a hidden work folder beside the output; on success the folder takes the output's name and
the model (and its GGUF) are imported. A failure or a cancel leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelyard.access.folders import Folders
from modelyard.backends.environments import Interpreter, default_variant, has_modules, interpreter_for
from modelyard.backends.installs import Installs
from modelyard.config import Settings
from modelyard.create.plan import Memory, Plan, Preview, gguf_record, preview
from modelyard.create.vocab import tokenizer_of
from modelyard.errors import (
    CreationNotFound,
    EngineError,
    EngineUnavailable,
    InvalidDesign,
    ModelyardError,
)
from modelyard.library import Library
from modelyard.library.naming import valid_name
from modelyard.library.requests import ImportRequest

WARNING = "a new model has random weights: it is for experiments and pre-training, not for use as is"
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


@dataclass
class Creation:
    id: int
    name: str
    out: str
    state: str = RUNNING
    stage: str = "starting"
    progress: float = 0.0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    parameters: int | None = None
    models: list[str] = field(default_factory=list)  # what was imported
    error: str | None = None
    hint: str | None = None
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Creations:
    def __init__(
        self,
        settings: Settings,
        library: Library,
        folders: Folders,
        memory: Callable[[], Memory],
        installs: Installs | None = None,
    ) -> None:
        self.settings = settings
        self.installs = installs  # where a missing environment is installed (MODELYARD_AUTO_INSTALL)
        self.library = library
        self.folders = folders
        self.memory = memory
        self.jobs: dict[int, Creation] = {}
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self.folder = settings.home / "create"

    def preview(self, plan: Plan) -> Preview:
        return preview(plan, self.library, self.folders, self.memory())

    def get(self, job: int) -> Creation:
        if job not in self.jobs:
            raise CreationNotFound(job)
        return self.jobs[job]

    def all(self) -> list[Creation]:
        return sorted(self.jobs.values(), key=lambda c: c.id, reverse=True)

    async def start(self, plan: Plan) -> Creation:
        """Checks everything first (the design, the output, the tokenizer, the memory, the
        environment), then starts the export."""
        shown = self.preview(plan)
        if shown.problems:
            raise InvalidDesign([(p.field, p.message) for p in shown.problems])
        if any(c.state == RUNNING and c.out == plan.out for c in self.jobs.values()):
            raise InvalidDesign([("out", "a creation into this folder is running")])
        python = await self._interpreter()
        if python.where == "server":
            self._check_modules(plan)
        out = Path(plan.out)
        name = plan.name or valid_name(out.name)
        job = Creation(next(self._ids), name, str(out))
        self.folder.mkdir(parents=True, exist_ok=True)
        work = out.parent / f".{out.name}.creating-{os.getpid()}-{job.id}"
        spec = self.folder / f"{job.id}.json"
        job.log = str(self.folder / f"{job.id}.log")
        tokenizer: dict[str, Any] = {
            "corpus": plan.tokenizer.corpus,
            "kind": plan.tokenizer.kind,
            "vocab_size": plan.tokenizer.vocab_size,
        }
        if plan.tokenizer.corpus is None and shown.tokenizer_model is not None:
            pretrained = tokenizer_of(self.library.get(shown.tokenizer_model))
            tokenizer["folder"] = str(pretrained.folder) if pretrained else None
        spec.write_text(
            json.dumps(
                {
                    "work": str(work),
                    "name": name,
                    "seed": plan.seed,
                    "gguf": plan.gguf,
                    "design": plan.design.to_json(),
                    "tokenizer": tokenizer,
                }
            )
        )
        try:
            work.mkdir(parents=True)
        except OSError as e:
            raise InvalidDesign([("out", f"cannot write there: {e.strerror}")]) from None
        try:
            with open(job.log, "wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    python.python,
                    "-m",
                    "modelyard.create.export",
                    str(spec),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env={
                        **os.environ,
                        **python.env,
                        "TOKENIZERS_PARALLELISM": "false",
                        "HF_HUB_OFFLINE": "1",
                    },
                    start_new_session=True,
                )
        except OSError as e:
            shutil.rmtree(work, ignore_errors=True)
            raise EngineError(
                f"the export could not start: {e.strerror}", hint=f"check {python.python}"
            ) from None
        self.jobs[job.id] = job
        self._procs[job.id] = proc
        self._tasks[job.id] = asyncio.create_task(self._follow(job, proc, work, plan))
        return job

    async def _interpreter(self) -> Interpreter:
        """The Python the export runs in: the transformers environment's. Where it is missing
        and the settings install what is, its install starts (EngineBuilding says so)."""
        try:
            return interpreter_for(
                "transformers", self.settings.envs_dir, managed_only=self.settings.python_envs == "managed"
            )
        except EngineUnavailable:
            if self.installs is None or not self.settings.installs_missing:
                raise
            raise await self.installs.building("transformers", default_variant()) from None

    @staticmethod
    def _check_modules(plan: Plan) -> None:
        needed = ["safetensors"]
        if plan.tokenizer.corpus is not None and plan.tokenizer.kind == "sentencepiece":
            needed += ["sentencepiece", "google.protobuf"]
        if plan.gguf:
            needed.append("gguf")
        missing = [m for m in needed if not has_modules((m,))]
        if missing:
            packages = " ".join("protobuf" if m == "google.protobuf" else m for m in missing)
            raise EngineUnavailable(
                f"creating this model needs {packages}, which the server's Python lacks",
                hint=f"`{sys.executable} -m pip install {packages}`, or `modelyard backends install transformers`",
            )

    async def _follow(self, job: Creation, proc: asyncio.subprocess.Process, work: Path, plan: Plan) -> None:
        result: dict[str, Any] = {}
        try:
            assert proc.stdout is not None
            async for line in proc.stdout:
                try:
                    said = json.loads(line)
                except ValueError:
                    continue
                if "stage" in said:
                    job.stage, job.progress = said["stage"], float(said["progress"])
                elif "error" in said:
                    job.error = said["error"]
                elif said.get("done"):
                    result = said
            code = await proc.wait()
            if job.state == CANCELLED:
                return
            if code != 0 or not result:
                raise EngineError(
                    job.error or f"the export stopped (exit status {code})", hint=f"its log: {job.log}"
                )
            job.parameters = int(result["parameters"])
            job.stage = "import"
            await asyncio.to_thread(self._land, job, work, Path(plan.out), result.get("gguf"))
            job.state, job.stage, job.progress = DONE, "done", 1.0
        except ModelyardError as e:
            job.state, job.error, job.hint = FAILED, e.message, e.hint
        except Exception as e:  # the job says what broke; the server keeps running
            job.state, job.error, job.hint = FAILED, f"{e.__class__.__name__}: {e}", f"its log: {job.log}"
        finally:
            job.finished = time.time()
            self._procs.pop(job.id, None)
            (self.folder / f"{job.id}.json").unlink(missing_ok=True)
            if job.state != DONE:
                await asyncio.to_thread(shutil.rmtree, work, True)

    def _land(self, job: Creation, work: Path, out: Path, gguf: str | None) -> None:
        """The work folder becomes the output folder; the model and its GGUF are imported."""
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        os.rename(work, out)
        try:
            model = self.library.import_model(
                ImportRequest(path=str(out), name=job.name, description=WARNING)
            )
            job.models.append(model.name)
            if gguf:
                path = out / Path(gguf).name
                ggufed = self.library.import_model(
                    ImportRequest(path=str(path), name=gguf_record(job.name), description=WARNING)
                )
                job.models.append(ggufed.name)
        except ModelyardError:
            for name in job.models:
                self.library.delete(name)
            os.rename(out, work)  # removed by the caller: nothing half-made stays
            raise

    async def cancel(self, job_id: int) -> Creation:
        job = self.get(job_id)
        proc = self._procs.get(job_id)
        if job.state != RUNNING or proc is None:
            return job
        job.state, job.stage = CANCELLED, "cancelled"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await self._tasks[job_id]
        return job

    async def close(self) -> None:
        for job_id in list(self._procs):
            await self.cancel(job_id)
