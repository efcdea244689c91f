"""Which backend serves a model is asked of the backends each time, from the model's facts: a
backend added after a model was imported serves it, with no re-import."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

import builders as b
from modelyard.backends.registry import Backends
from modelyard.catalog.records import Model
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.errors import InvalidSettings
from modelyard.formats.loaders import quant_method
from modelyard.library import ImportRequest, Library
from modelyard.runtime.runtime import Runtime
from runtime.fake_clock import FakeClock
from runtime.fake_executor import FakeBackend, FakeExecutor
from runtime.fakes import inline, run


class GgufOnly(FakeBackend):
    """The backends a server had when the model was imported: GGUF only."""

    name: ClassVar[str] = "gguf-only"

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.format == "gguf" else None


class GptqKernels(FakeBackend):
    """A backend written later, for GPTQ models."""

    name: ClassVar[str] = "gptq-kernels"

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if quant_method(model.format, model.facts) == "gptq" else None


def server(tmp_path: Path, *backends: FakeBackend) -> tuple[Runtime, FakeExecutor, Store]:
    """A server over the catalog in ``tmp_path``, with these backends."""
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    clock = FakeClock()
    executor = FakeExecutor(clock)
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    runtime = Runtime(
        settings, Library(store), executor=executor, backends=Backends(backends), clock=clock, offload=inline
    )
    return runtime, executor, store


@run
async def test_a_backend_added_later_serves_a_model_imported_before_it(tmp_path: Path) -> None:
    folder = b.write_hf_llama(
        tmp_path / "tiny-gptq", extra={"quantization_config": {"quant_method": "gptq", "bits": 4}}
    )
    before, _, store = server(tmp_path, GgufOnly())
    await before.start()
    before.library.import_model(ImportRequest(path=str(folder), name="tiny-gptq"))
    with pytest.raises(InvalidSettings, match="no backend of modelyard runs 'tiny-gptq'"):
        await before.load("tiny-gptq")
    await before.close()
    store.close()

    after, executor, store = server(tmp_path, GgufOnly(), GptqKernels())  # the next version
    await after.start()
    try:
        dep = await after.load("tiny-gptq")  # the same catalog row: nothing imported again
        assert after.backend_for(after.library.get("tiny-gptq")).name == "gptq-kernels"
        assert dep.model == "tiny-gptq"
        assert [e.model for e in executor.running()] == ["tiny-gptq"]
    finally:
        await after.close()
        store.close()
