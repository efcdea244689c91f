from __future__ import annotations

import io
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.backends import environments, install
from modelyard.backends.install import install_llama_server
from modelyard.errors import EngineError


def test_missing_build_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EngineError, match="building llama-server needs cmake") as e:
        install_llama_server(tmp_path / "bin")
    assert e.value.hint is not None
    assert "install cmake" in e.value.hint
    assert not (tmp_path / "bin" / "llama-server").exists()


class FakeBuild:
    """Stands in for pip and cmake in install_llama_server: `pip download` writes a source
    archive, the build writes binaries that answer --version. Counts the builds."""

    def __init__(self, sdist: bytes = b"llama.cpp sources") -> None:
        self.sdist = sdist
        self.builds: list[list[str]] = []

    def archive(self) -> bytes:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            member = tarfile.TarInfo("llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt")
            member.size = len(self.sdist)
            tar.addfile(member, io.BytesIO(self.sdist))
        return data.getvalue()

    def __call__(self, argv: list[str], log: Path, progress: object, stage: str, **kwargs: object) -> None:
        if stage == "download":  # the same bytes for the same sources, as PyPI serves them
            work = Path(argv[argv.index("-d") + 1])
            (work / "llama_cpp_python-0.3.36.tar.gz").write_bytes(self.archive())
        elif stage == "configure":
            self.builds.append(argv)
        elif stage == "build":
            build = Path(argv[argv.index("--build") + 1])
            (build / "bin").mkdir(parents=True)
            for program in ("llama-server", "ggml-rpc-server"):
                (build / "bin" / program).write_text("#!/bin/sh\necho version: 1\n")


def test_a_build_of_the_same_inputs_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeBuild()
    monkeypatch.setattr(install, "_run", fake)
    bin_dir = tmp_path / "bin"
    stages: list[str] = []
    path = install_llama_server(bin_dir, progress=lambda stage, pct: stages.append(stage))
    assert path == bin_dir / "llama-server"
    assert (bin_dir / "rpc-server").is_file()
    assert len(fake.builds) == 1
    key = install.installed_build(bin_dir, "llama-server")
    assert key is not None
    stages.clear()
    install_llama_server(bin_dir, progress=lambda stage, pct: stages.append(stage))
    assert len(fake.builds) == 1  # fetched and checked, not built again
    assert stages[-1] == "up to date"
    assert "built from these inputs already" in (bin_dir / "llama-server-build.log").read_text()


def test_a_build_whose_inputs_changed_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeBuild()
    monkeypatch.setattr(install, "_run", fake)
    bin_dir = tmp_path / "bin"
    install_llama_server(bin_dir)
    first = install.installed_build(bin_dir, "llama-server")
    fake.sdist = b"other llama.cpp sources"  # the same version's archive, another content
    install_llama_server(bin_dir)
    assert len(fake.builds) == 2
    second = install.installed_build(bin_dir, "llama-server")
    assert second is not None
    assert second != first
    monkeypatch.setattr(install, "_first_line", lambda argv: f"{argv[0]} 99.0")  # a new compiler
    install_llama_server(bin_dir)
    assert len(fake.builds) == 3
    # a build that no longer runs is built again, whatever its key says
    (bin_dir / "llama-server").write_text("#!/bin/sh\nexit 1\n")
    install_llama_server(bin_dir)
    assert len(fake.builds) == 4
    assert install.installed_build(bin_dir, "llama-server") is not None


def test_an_environment_of_the_same_inputs_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installs: list[list[str]] = []

    def pip(python: str, args: list[str], *rest: object) -> None:
        installs.append(args)

    def run(argv: list[str], log: Path, stage: str, *rest: object) -> None:  # python -m venv
        folder = Path(argv[-1])
        (folder / "bin").mkdir(parents=True, exist_ok=True)
        python = folder / "bin" / "python"  # this interpreter, with its environment's packages
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)

    monkeypatch.setattr(environments, "_pip", pip)
    monkeypatch.setattr(environments, "_run", run)
    # what the environment must import: modules this interpreter has
    spec = environments.PACKAGES["spandrel"]
    monkeypatch.setitem(environments.PACKAGES, "spandrel", replace(spec, modules=("json", "torch")))
    envs = tmp_path / "envs"
    environments.install_env(envs, "spandrel", "cpu", torch_index=None)
    done = len(installs)
    assert done > 0
    stages: list[str] = []
    environments.install_env(
        envs, "spandrel", "cpu", torch_index=None, progress=lambda stage, step, steps: stages.append(stage)
    )
    assert len(installs) == done  # nothing installed again
    assert stages == ["up to date"]
    # another torch index is another environment: installed again
    environments.install_env(envs, "spandrel", "cpu", torch_index="https://example.invalid/whl")
    assert len(installs) > done
    # as is one whose modules went missing
    again = len(installs)
    monkeypatch.setitem(environments.PACKAGES, "spandrel", replace(spec, modules=("no_such_module_here",)))
    environments.install_env(envs, "spandrel", "cpu", torch_index="https://example.invalid/whl")
    assert len(installs) > again


def test_an_environment_without_torch_installs_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Piper's voices run on onnxruntime: its environment gets no torch, and the torch index is
    none of its inputs."""
    installs: list[list[str]] = []
    monkeypatch.setattr(environments, "_pip", lambda python, args, *rest: installs.append(args))
    monkeypatch.setattr(environments, "_run", lambda argv, *rest: Path(argv[-1]).mkdir(parents=True))
    environments.install_env(tmp_path / "envs", "piper", "cpu", torch_index=None)
    assert installs
    assert not [arg for args in installs for arg in args if arg.startswith("torch")]
    assert environments.env_key("piper", "cpu", torch_index=None) == environments.env_key(
        "piper", "cpu", torch_index="https://example.invalid/whl"
    )
    assert environments.env_key("spandrel", "cpu", torch_index=None) != environments.env_key(
        "spandrel", "cpu", torch_index="https://example.invalid/whl"
    )
