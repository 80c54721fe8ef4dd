"""Array backends: one dispatch point for the compute kernels.

Every kernel exists three times, with the same arguments and the same arithmetic:

* ``numpy`` — :mod:`.numpy_kernels`, the reference implementation. It is the oracle of the tests
  and the fallback that needs nothing compiled.
* ``numba`` — :mod:`.numba_kernels`, parallel CPU kernels; the default for host arrays.
* ``cupy`` — :mod:`.cupy_kernels`, CUDA kernels; the default for cupy arrays. CuPy is optional
  (``pip install xlangevin[gpu]``) and is only ever imported lazily, through :func:`import_cupy`.

Kernels see plain arrays only (no xarray, no estimator objects). :func:`resolve_backend` is the one
place that decides which implementation runs.
"""

from __future__ import annotations

import importlib
from typing import Any

BACKENDS = ("numpy", "numba", "cupy")

__all__ = ["BACKENDS", "resolve_backend", "is_cupy_array", "import_cupy", "cupy_available"]


def is_cupy_array(x: Any) -> bool:
    """True if ``x`` is a ``cupy.ndarray`` (checked without importing cupy)."""
    cls = type(x)
    return cls.__name__ == "ndarray" and cls.__module__.split(".", 1)[0] == "cupy"


def import_cupy():
    """Import and return the ``cupy`` module, or raise an ImportError that says how to get it."""
    try:
        return importlib.import_module("cupy")
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the 'cupy' backend needs CuPy and a CUDA GPU; install it with "
            "`pip install xlangevin[gpu]` (or the cupy-cudaXXx wheel matching your CUDA)"
        ) from err


def cupy_available() -> bool:
    """True if cupy imports and sees at least one CUDA device."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, driver errors ...
        return False


def resolve_backend(x: Any = None, backend: str | None = None) -> str:
    """Choose the kernel implementation for input ``x``.

    ``backend=None`` picks ``"cupy"`` when ``x`` is a cupy array and ``"numba"`` otherwise;
    ``"numpy"`` selects the reference kernels. An explicit ``"cupy"`` checks that cupy imports.
    """
    if backend is None:
        return "cupy" if is_cupy_array(x) else "numba"
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    backend = backend.lower()
    if backend == "cupy":
        import_cupy()
    return backend
