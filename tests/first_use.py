"""A machine with no engine for GGUF models, for the tests of llama-server built on first use:
llama-cpp-python's server reads as not installed, and the build is a stand-in (a real one takes
minutes; the tests of `backends install` build for real) that reports its stages slowly enough
to be seen, then puts the tests' llama-server where the build would."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import llama_server
from modelyard.backends import install
from modelyard.backends.llama_cpp_python import LlamaCppPython
from modelyard.errors import EngineError, EngineUnavailable

STAGES = (("download", 0), ("configure", 10), ("build llama-server", 50), ("build llama-server", 90))


def no_gguf_engine(monkeypatch: pytest.MonkeyPatch, pause: float = 0.3, fails: str | None = None) -> None:
    """``fails``: the build ends with this error instead (after its first stage)."""
    program = llama_server()
    assert program is not None, "set MODELYARD_LLAMA_SERVER (scripts/test does)"

    def no_llama_extra(self: LlamaCppPython, version: str | None = None) -> str:
        raise EngineUnavailable("llama-cpp-python is not installed")

    def build(bin_dir: Path, *, name: str, progress: install.Progress, **_: object) -> Path:
        for stage, pct in STAGES:
            progress(stage, pct)
            time.sleep(pause)
            if fails is not None:
                raise EngineError(fails, hint="see the build's log")
        bin_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(program, bin_dir / name))

    monkeypatch.setattr(LlamaCppPython, "preflight", no_llama_extra)
    monkeypatch.setattr(install, "install_llama_server", build)
