"""Install engines: llama-server built from the llama.cpp sources that llama-cpp-python's sdist
carries (PyPI is reachable where hubs and GitHub may not be).

A build is kept with the key of what it was built from (the sdist's sha256, the variant, the
CMake flags, the compilers, the CPU it was tuned for, the Vulkan headers): installing again
fetches and checks those inputs, which is cheap, and builds only when the key differs or the
installed binaries do not run. Builds go through ccache when it is installed, so a second
version or variant compiles only what differs."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from modelyard.errors import EngineError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# ggml's AMX kernels (compiled in by -march=native on Intel CPUs that have AMX) crash in
# ggml_backend_amx_mul_mat on Q4_K weights on some of those machines (llama.cpp issue 20824,
# closed unfixed): the build keeps every other native instruction and leaves them out.
# scripts/setup builds llama-cpp-python with the same flags.
NO_AMX = (
    ("-DCMAKE_C_FLAGS=-U__AMX_INT8__", "-DCMAKE_CXX_FLAGS=-U__AMX_INT8__")
    if platform.machine() in ("x86_64", "AMD64")
    else ()
)
PROGRESS = re.compile(r"^\[\s*(\d+)%\]")

# (stage, percent 0-100) -> None
Progress = Callable[[str, float], None]


def _run(
    argv: list[str],
    log: Path,
    progress: Progress,
    stage: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        with subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
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


@dataclass(frozen=True)
class BuildInputs:
    """What a llama-server build is made from; equal inputs make an equal build."""

    version: str
    sdist_sha256: str
    variant: str
    flags: tuple[str, ...]
    compilers: tuple[str, ...]  # the first line of `cc --version`, `c++ --version`, `cmake --version`
    cpu: str  # the CPU's feature flags (GGML_NATIVE tunes the build for them)
    vulkan_headers: str  # sha256 of vulkan_core.h for the Vulkan variant, else ""

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _first_line(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return hashlib.sha256(line.split(":", 1)[1].encode()).hexdigest()[:16]
    except OSError:
        pass
    return platform.machine()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stamp_path(bin_dir: Path, name: str) -> Path:
    """Where the key of the build installed as ``name`` is kept."""
    return bin_dir / f".{name}.build.json"


def installed_variant(program: str) -> str:
    """The variant of a build modelyard installed (cpu, cuda, vulkan), from the key it keeps
    beside the program; "" when it keeps none (another program, or none installed)."""
    stamp = stamp_path(Path(program).parent, Path(program).name)
    try:
        return str(json.loads(stamp.read_text())["inputs"]["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _runs(program: Path) -> bool:
    """Whether an installed binary starts (`--version` loads no model)."""
    if not (program.is_file() and os.access(program, os.X_OK)):
        return False
    try:
        return subprocess.run([str(program), "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def installed_build(bin_dir: Path, name: str) -> str | None:
    """The key of the build installed as ``name`` when it and its rpc-server run, else None."""
    try:
        key = json.loads(stamp_path(bin_dir, name).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    programs = (bin_dir / name, bin_dir / rpc_server_name(name))
    if not all(p.is_file() and os.access(p, os.X_OK) for p in programs) or not _runs(bin_dir / name):
        return None
    return str(key)


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
    ``name`` and its rpc-server. Returns the llama-server's path. An installed build of the same
    inputs is kept as it is; the old binaries stay until the new ones are built."""
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise EngineError(
                f"building llama-server needs {tool}",
                hint="install cmake and a C++ compiler (build-essential)",
            )
    newer = os.environ.get("MODELYARD_VULKAN_INCLUDE")  # newer Vulkan headers than the system's
    include = Path(newer or "/usr/include")
    if variant == "vulkan" and (
        shutil.which("glslc") is None or not (include / "vulkan" / "vulkan.h").is_file()
    ):
        raise EngineError(
            "building llama-server for Vulkan needs the Vulkan headers and the glslc shader compiler",
            hint="sudo apt-get install libvulkan-dev glslc spirv-headers (and a Vulkan driver: mesa-vulkan-drivers)",
        )
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / f"{name}-build.log"
    log.write_text("")
    target = bin_dir / name
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
        flags = [
            "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",
            "-DGGML_RPC=ON",  # llama-server --rpc, and rpc-server: one model over several workers
            *NO_AMX,
        ]  # fmt: skip
        vulkan_headers = ""
        if variant == "cuda":
            flags.append("-DGGML_CUDA=ON")
        elif variant == "vulkan":
            flags.append("-DGGML_VULKAN=ON")
            vulkan_headers = _sha256(include / "vulkan" / "vulkan_core.h")
        inputs = BuildInputs(
            version=version,
            sdist_sha256=_sha256(archives[0]),
            variant=variant,
            flags=tuple(flags),
            compilers=tuple(_first_line([tool, "--version"]) for tool in ("cc", "c++", "cmake")),
            cpu=_cpu_flags(),
            vulkan_headers=vulkan_headers,
        )
        if installed_build(bin_dir, name) == inputs.key:
            with log.open("a") as out:
                out.write(f"{target} is built from these inputs already (key {inputs.key})\n")
            progress("up to date", 100)
            return target
        if newer and variant == "vulkan":
            flags.append(f"-DVulkan_INCLUDE_DIR={newer}")  # its path is not an input: its content is
        progress("extract", 0)
        with tarfile.open(archives[0]) as tar:
            tar.extractall(work / "src", filter="data")
        (source,) = (work / "src").glob("llama_cpp_python-*/vendor/llama.cpp")
        build = work / "build"
        # ccache (llama.cpp's CMake uses it when found) hashes paths relative to the work folder,
        # which is a new temporary one each time
        env = {**os.environ, "CCACHE_BASEDIR": str(work), "CCACHE_NOHASHDIR": "true"}
        progress("configure", 0)
        _run(["cmake", "-S", str(source), "-B", str(build), *flags], log, progress, "configure", env=env)
        threads = str(jobs or os.cpu_count() or 2)
        _run(
            ["cmake", "--build", str(build), "--target", "llama-server", "ggml-rpc-server", "-j", threads],
            log,
            progress,
            "build",
            env=env,
        )
        stamp_path(bin_dir, name).unlink(missing_ok=True)  # no key while the binaries change
        for program, installed in (("ggml-rpc-server", rpc_server_name(name)), ("llama-server", name)):
            built = build / "bin" / program
            if not built.is_file():
                raise EngineError(f"the build finished without a {program} binary", hint=f"see {log}")
            staged = bin_dir / f".{installed}.new"
            shutil.copy2(built, staged)
            staged.chmod(0o755)
            staged.replace(bin_dir / installed)
        stamp = {"key": inputs.key, "inputs": asdict(inputs)}
        staged_stamp = stamp_path(bin_dir, name).with_suffix(".new")
        staged_stamp.write_text(json.dumps(stamp, indent=1))
        staged_stamp.replace(stamp_path(bin_dir, name))
    progress("done", 100)
    return target
