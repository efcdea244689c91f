"""Install engines: llama-server built from the llama.cpp sources that llama-cpp-python's sdist
carries (PyPI is reachable where hubs and GitHub may not be)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from modelyard.errors import EngineError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
PROGRESS = re.compile(r"^\[\s*(\d+)%\]")

# (stage, percent 0-100) -> None
Progress = Callable[[str, float], None]


def _run(argv: list[str], log: Path, progress: Progress, stage: str, cwd: Path | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        with subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                m = PROGRESS.match(line)
                if m:
                    progress(stage, float(m.group(1)))
            code = proc.wait()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise EngineError(f"{stage} failed (exit status {code})", hint=f"the log {log} ends with:\n{tail}")


def rpc_server_name(llama_server: str) -> str:
    """The rpc-server built beside a llama-server: rpc-server, rpc-server-<version>."""
    return "rpc-server" + llama_server.removeprefix("llama-server")


def install_llama_server(
    bin_dir: Path,
    *,
    variant: str = "cpu",
    version: str = LLAMA_CPP_PYTHON_VERSION,
    name: str = "llama-server",
    progress: Progress = lambda stage, pct: None,
    jobs: int | None = None,
) -> Path:
    """Download the sdist of llama-cpp-python ``version``, build its llama-server (cpu, cuda with
    GGML_CUDA, or vulkan with GGML_VULKAN) and rpc-server, install them into ``bin_dir`` as
    ``name`` and its rpc-server. Returns the llama-server's path. The old binaries stay until the
    new ones are built."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise EngineError(
                f"building llama-server needs {tool}",
                hint="install cmake and a C++ compiler (build-essential)",
            )
    headers = Path(os.environ.get("MODELYARD_VULKAN_INCLUDE") or "/usr/include") / "vulkan" / "vulkan.h"
    if variant == "vulkan" and (shutil.which("glslc") is None or not headers.is_file()):
        raise EngineError(
            "building llama-server for Vulkan needs the Vulkan headers and the glslc shader compiler",
            hint="sudo apt-get install libvulkan-dev glslc spirv-headers (and a Vulkan driver: mesa-vulkan-drivers)",
        )
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / f"{name}-build.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="modelyard-llama-") as tmp:
        work = Path(tmp)
        progress("download", 0)
        _run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={version}", "-d", str(work)],
            log, progress, "download",
        )  # fmt: skip
        archives = list(work.glob("llama_cpp_python-*.tar.gz"))
        if not archives:
            raise EngineError("pip downloaded no llama-cpp-python source archive", hint=f"see {log}")
        progress("extract", 0)
        with tarfile.open(archives[0]) as tar:
            tar.extractall(work / "src", filter="data")
        (source,) = (work / "src").glob("llama_cpp_python-*/vendor/llama.cpp")
        build = work / "build"
        flags = [
            "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",
            "-DGGML_RPC=ON",  # llama-server --rpc, and rpc-server: one model over several workers
        ]  # fmt: skip
        if variant == "cuda":
            flags.append("-DGGML_CUDA=ON")
        elif variant == "vulkan":
            flags.append("-DGGML_VULKAN=ON")
            newer = os.environ.get("MODELYARD_VULKAN_INCLUDE")  # newer Vulkan headers than the system's
            if newer:
                flags.append(f"-DVulkan_INCLUDE_DIR={newer}")
        progress("configure", 0)
        _run(["cmake", "-S", str(source), "-B", str(build), *flags], log, progress, "configure")
        threads = str(jobs or os.cpu_count() or 2)
        _run(
            ["cmake", "--build", str(build), "--target", "llama-server", "ggml-rpc-server", "-j", threads],
            log,
            progress,
            "build",
        )
        for program, installed in (("ggml-rpc-server", rpc_server_name(name)), ("llama-server", name)):
            built = build / "bin" / program
            if not built.is_file():
                raise EngineError(f"the build finished without a {program} binary", hint=f"see {log}")
            staged = bin_dir / f".{installed}.new"
            shutil.copy2(built, staged)
            staged.chmod(0o755)
            staged.replace(bin_dir / installed)
        target = bin_dir / name
    progress("done", 100)
    return target
