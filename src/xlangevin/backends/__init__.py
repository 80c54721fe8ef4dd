"""Compute kernels behind one registry: ``kernel(name, backend=...)`` is the only dispatch.

Kernels are grouped by concern, each module holding the numpy reference (the oracle of the tests
and the fallback that needs nothing compiled) beside its numba version:

* :mod:`.assign` — tree descent and nearest centroid of the bisecting k-means partition (with
  the shared 4-lane distance convention of :mod:`.lanes`);
* :mod:`.kmeans` — building the bisecting k-means tree (numba only: its oracle is the
  reassignment of the build points by the reference descent);
* :mod:`.cells` — per-cell sums of the KGMM passes;
* :mod:`.transitions` — transition counts within sequences and the rate-matrix assembly;
* :mod:`.euler_maruyama` — ensemble stepping of the Langevin model;
* :mod:`.sinkhorn` — row-wise log-sum-exp of a sparse log-kernel (symmetric Sinkhorn);
* :mod:`.cupy_kernels` — the CUDA versions where they exist, imported only when the ``cupy``
  backend is asked for (``pip install xlangevin[gpu]``).

Every registered name has the same signature on every backend; :func:`registry` lists them and
``tests/backends`` checks each fast entry against its reference. Kernels see plain arrays only
(no xarray, no estimator objects).
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable

BACKENDS = ("numpy", "numba", "cupy")

#: the modules that register each backend's kernels (imported on first use)
_MODULES = {
    "numpy": (".assign", ".cells", ".transitions", ".euler_maruyama", ".sinkhorn"),
    "numba": (".assign", ".cells", ".transitions", ".euler_maruyama", ".sinkhorn", ".kmeans"),
    "cupy": (".cupy_kernels",),
}

_REGISTRY: dict[tuple[str, str], Callable] = {}
_LOADED: set = set()

__all__ = ["BACKENDS", "kernel", "register", "registry", "resolve_backend", "is_cupy_array",
           "import_cupy", "cupy_available", "torch_threads"]


def register(name: str, backend: str):
    """Decorator: ``fn`` is the ``backend`` implementation of kernel ``name``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")

    def decorate(fn):
        _REGISTRY[(name, backend)] = fn
        return fn

    return decorate


def _load(backend: str) -> None:
    if backend not in _LOADED:
        for module in _MODULES[backend]:
            importlib.import_module(module, __name__)
        _LOADED.add(backend)


def kernel(name: str, backend: str | None = None, like: Any = None) -> Callable:
    """The implementation of kernel ``name`` on ``backend`` (resolved with
    :func:`resolve_backend` from ``like`` when None)."""
    backend = resolve_backend(like, backend)
    _load(backend)
    try:
        return _REGISTRY[(name, backend)]
    except KeyError:
        have = sorted(b for (n, b) in _REGISTRY if n == name)
        raise ValueError(f"kernel {name!r} has no {backend!r} implementation; it has "
                         f"{have or 'none (unknown kernel)'}") from None


def registry(backends=("numpy", "numba")) -> dict:
    """``{(name, backend): function}`` of every kernel registered on ``backends``."""
    for b in backends:
        _load(b)
    return {k: v for k, v in _REGISTRY.items() if k[1] in backends}


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


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch CPU ops on ``n`` threads inside the block (small networks train and evaluate
    several times faster on one thread: per-op threading overhead dominates their tiny matrix
    products)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
