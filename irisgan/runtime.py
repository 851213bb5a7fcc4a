"""Process-level speed settings, applied by the entry points (the user exports nothing).

glibc's malloc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it with ``munmap`` on free. Batch-128 activations of the RAN are 10-75 MiB each, so without tuning
every training step page-faults hundreds of MiB anew (measured here: about 2.4x slower). ``mallopt`` lets us
keep such blocks on the heap and stop trimming it, which is what ``MALLOC_MMAP_MAX_=0`` and
``MALLOC_TRIM_THRESHOLD_`` would do if exported before start-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

import torch

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_applied: dict[str, bool] = {}


def tune_malloc() -> bool:
    """Keep large blocks on the glibc heap and never give it back to the OS mid-run. Returns True when
    applied (False on non-glibc platforms, where nothing is needed or possible)."""
    if "malloc" in _applied:
        return _applied["malloc"]
    ok = False
    name = ctypes.util.find_library("c")
    if name and os.name == "posix":
        try:
            libc = ctypes.CDLL(name)
            mallopt = libc.mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = bool(mallopt(_M_MMAP_MAX, 0))
            ok &= bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
            ok &= bool(mallopt(_M_TOP_PAD, 64 << 20))
        except (OSError, AttributeError):
            ok = False
    _applied["malloc"] = ok
    log.debug("malloc tuning %s", "applied" if ok else "not available")
    return ok


def configure(malloc: bool = True, num_threads: int | None = None, matmul_precision: str = "high") -> None:
    """Apply the runtime settings from the ``runtime`` config node."""
    if malloc:
        tune_malloc()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    torch.set_float32_matmul_precision(matmul_precision)


def resolve_auto(value: bool | str | None, device: torch.device | str, name: str) -> bool:
    """A GPU speed switch: ``true``, ``false``, or ``auto`` (on where the device is a CUDA GPU).

    The GPU-only paths (device-resident batches, CUDA-graph compilation, fused optimizers) are ``auto`` in
    the configs, so that ``trainer=gpu`` turns them on and the CPU path stays as it is.
    """
    if isinstance(value, str) and value.lower() == "auto":
        return torch.device(device).type == "cuda"
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ValueError(f"{name} must be true, false or auto, got {value!r}")
