"""Single-threaded OpenBLAS for the closed forms while JAX is loaded.

Why: after JAX's CPU client starts, its thread pool and a multi-threaded OpenBLAS fight for the
cores; measured on the 2-core CI machine, ``numpy.linalg.eigh`` of a 261 x 261 matrix went from
7 ms (one BLAS thread) to 1.1 s (default threads). The closed forms run one small matrix at a
time, so one BLAS thread is also the fastest choice. This sets the thread count of every loaded
OpenBLAS through its C API (what threadpoolctl does) and restores it afterwards; where no
OpenBLAS is found it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _ctypes import CFuncPtr

_SETTERS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
)
_GETTERS = tuple(s.replace("set", "get") for s in _SETTERS)


def _loaded_openblas() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def _handles() -> list[tuple[CFuncPtr, CFuncPtr]]:
    out = []
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in zip(_SETTERS, _GETTERS, strict=True):
            setter = getattr(lib, set_name, None)
            getter = getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                out.append((setter, getter))
                break
    return out


@contextlib.contextmanager
def blas_threads(num: int = 1) -> Iterator[None]:
    """Run the block with ``num`` OpenBLAS threads; restore the previous counts after."""
    handles = _handles()
    previous = [getter() for _, getter in handles]
    for setter, _ in handles:
        setter(num)
    try:
        yield
    finally:
        for (setter, _), old in zip(handles, previous, strict=True):
            setter(old)
