"""Ask Linux for the AMX tile state (see __init__.py); nothing elsewhere, nothing on failure (an
older kernel, or no AMX: the kernels do without)."""

import contextlib
import ctypes
import platform
import sys

ARCH_PRCTL = 158  # the x86-64 syscall
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18

if sys.platform == "linux" and platform.machine() == "x86_64":
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).syscall(ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
