"""A folder put first on an engine's PYTHONPATH (vLLM's): its sitecustomize asks Linux for the
AMX tile state in every Python process of the engine, workers included.

Linux hands a process the AMX state only once it asks (arch_prctl ARCH_REQ_XCOMP_PERM); torch
asks lazily, on its first bf16 matmul, but vLLM's CPU kernels for GPTQ and AWQ may use AMX
before that and die of SIGILL (measured: a worker's exit code -4 on the first request). The
permission is cleared on exec, so each process asks for itself."""

from pathlib import Path

FOLDER = str(Path(__file__).resolve().parent)
