"""Keep freed CPU memory in the process: large tensors reuse pages instead of faulting them in.

A training step on the CPU allocates and frees tensors the size of an embedding
table many times (Gowalla's ``[70839, 64]`` float32 layer is 18 MiB). glibc's
``malloc`` serves blocks of that size from fresh ``mmap`` regions or trims them off
the top of its heap when they are freed, so the next step's allocation of the same
size touches new pages: the kernel zeroes and maps each 4 KiB page again, and the
first operator writing into the tensor pays for it. Raising the ``mmap`` threshold
and the trim threshold (``mallopt(3)``) keeps freed blocks in the heap for reuse.

Measured in fresh processes, alternated (``python benchmarks/heap.py``,
docs/benchmarks.md "The process heap"), this is what made XSimGCL's training step
on Gowalla slower after its layers moved into one autograd node, and the setting
undoes it. Memory freed below the high-water mark stays with the process until it
exits; the peak itself moved by -2 to +4 % in the study.

The ``mmap`` threshold is fixed at 32 MiB, the most glibc's dynamic threshold
reaches (it rises to the size of each mapped block freed): so no block goes to the
heap that glibc would not put there itself after freeing one that size; the setting
does it from the start and stops the trimming. Higher thresholds cost memory: blocks of one size allocated
and freed in turn leave holes at first, since an aligned request (PyTorch's) needs a
little more than the block freed before it, and with 100 MiB blocks the peak grew by
800 MiB against 100 MiB mapped anew (glibc 2.36).

``ssgraphrec``'s command line applies it at start (all subcommands, every rank of
``--nproc``); code that uses the package as a library may call
:func:`retain_freed_memory` itself. It applies on Linux with glibc only, and not
where the user chose otherwise: ``SSGRAPHREC_HEAP=system``, or glibc's own
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``GLIBC_TUNABLES=glibc.malloc...``
settings, leave ``malloc`` as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: The environment variable that selects the policy: ``retain`` (default) or ``system``.
HEAP_ENV = "SSGRAPHREC_HEAP"
#: ``mallopt`` parameters (glibc's ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, not from ``mmap``: glibc's dynamic
#: threshold's ceiling on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``), where a
#: block above it is always mapped anew.
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory at the top of the heap kept up to this size (``mallopt`` takes an ``int``).
TRIM_THRESHOLD_BYTES = (1 << 31) - 1
#: glibc's own settings, which take precedence over this module's.
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def heap_policy() -> str:
    """``retain`` or ``system``, from :data:`HEAP_ENV` (a :class:`ConfigError` otherwise)."""
    from .errors import ConfigError

    policy = os.environ.get(HEAP_ENV, "retain").strip().lower() or "retain"
    if policy not in ("retain", "system"):
        raise ConfigError(f"{HEAP_ENV} must be 'retain' or 'system', got "
                          f"{os.environ[HEAP_ENV]!r}")
    return policy


def user_set_malloc() -> bool:
    """Whether the environment already configures glibc's ``malloc`` thresholds."""
    return (any(name in os.environ for name in GLIBC_SETTINGS)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def retain_freed_memory() -> bool:
    """Keep blocks up to :data:`MMAP_THRESHOLD_BYTES` in the heap once freed (see the
    module's docstring); ``True`` when ``malloc`` now does so.

    A no-op returning ``False`` off glibc, under ``SSGRAPHREC_HEAP=system`` and where
    the environment sets glibc's thresholds itself.
    """
    if heap_policy() == "system" or user_set_malloc():
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success; a fixed mmap threshold also turns off its dynamic growth
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
