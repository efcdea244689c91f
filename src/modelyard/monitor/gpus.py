"""GPUs: live memory and temperature from NVML for NVIDIA; static facts for AMD and Intel from
sysfs. An empty list when the machine has none."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENDORS = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel"}


@dataclass
class Gpu:
    index: int
    name: str
    vendor: str
    memory_total: int | None
    memory_used: int | None = None
    temperature: float | None = None  # Celsius
    live: bool = False  # memory and temperature are sampled (NVIDIA); else static facts only


def _nvml() -> Any | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver, no device: not an error, just no NVIDIA GPU
        return None
    return pynvml


def nvidia() -> list[Gpu]:
    nvml = _nvml()
    if nvml is None:
        return []
    gpus = []
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        name = nvml.nvmlDeviceGetName(handle)
        temp = None
        with contextlib.suppress(Exception):
            temp = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        gpus.append(
            Gpu(
                index=i,
                name=name.decode() if isinstance(name, bytes) else str(name),
                vendor="NVIDIA",
                memory_total=int(mem.total),
                memory_used=int(mem.used),
                temperature=temp,
                live=True,
            )
        )
    return gpus


def others(drm: Path = Path("/sys/class/drm")) -> list[Gpu]:
    """AMD and Intel GPUs as the kernel lists them: vendor, and VRAM size where it says."""
    gpus: list[Gpu] = []
    for card in sorted(drm.glob("card[0-9]*")):
        if "-" in card.name:  # connectors such as card0-HDMI-A-1
            continue
        device = card / "device"
        try:
            vendor = VENDORS.get((device / "vendor").read_text().strip())
        except OSError:
            continue
        if vendor not in ("AMD", "Intel"):
            continue
        total = None
        with contextlib.suppress(OSError, ValueError):
            total = int((device / "mem_info_vram_total").read_text().strip())
        gpus.append(
            Gpu(index=len(gpus), name=f"{vendor} GPU ({card.name})", vendor=vendor, memory_total=total)
        )
    return gpus


def detect() -> list[Gpu]:
    return nvidia() + others()


ICD_FOLDERS = (Path("/usr/share/vulkan/icd.d"), Path("/etc/vulkan/icd.d"))


def vulkan_drivers(folders: tuple[Path, ...] = ICD_FOLDERS, dri: Path = Path("/dev/dri")) -> list[str]:
    """The Vulkan drivers for a real GPU here: a GPU's render node, and the ICD manifests of its
    drivers (Mesa installs several at once; its software rasteriser, lavapipe, does not count)."""
    render_nodes = list(dri.glob("renderD*")) if dri.is_dir() else []
    if not render_nodes:
        return []
    found = []
    for folder in folders:
        for manifest in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if not manifest.name.startswith("lvp_"):
                found.append(manifest.stem)
    return found
