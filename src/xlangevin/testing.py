"""Test helpers: optional-dependency markers built in one place.

``requires_cupy`` skips a test unless cupy imports and a CUDA GPU is visible; ``requires_gpu`` is
the same check under the name the tests of GPU code use; ``requires_cuda`` skips unless torch
sees a CUDA GPU (the networks' GPU path). All carry the ``gpu`` marker, so ``pytest -m gpu``
selects them and ``pytest -m 'not gpu'`` leaves them out::

    from xlangevin.testing import requires_cupy

    @requires_cupy
    def test_something_on_the_gpu(): ...
"""

from __future__ import annotations

import numpy as np

from .backends import cupy_available

__all__ = ["has_cupy", "has_torch_cuda", "requires_cupy", "requires_cuda", "requires_gpu", "sample_density_1d",
           "weighted_relative_error"]


def sample_density_1d(density, n, lo, hi, rng, grid_points=200_001):
    """``n`` independent draws from a 1-D density (inverse CDF on a fine grid on [lo, hi])."""
    grid = np.linspace(lo, hi, grid_points)
    pdf = density(grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return np.interp(rng.random(n), cdf / cdf[-1], grid)


def weighted_relative_error(estimate, exact, weights):
    """``sqrt(sum w |estimate - exact|^2 / sum w |exact|^2)`` over rows (density-weighted
    relative L2 error when ``weights`` are density values on a uniform grid)."""
    estimate = np.asarray(estimate, float).reshape(len(weights), -1)
    exact = np.asarray(exact, float).reshape(len(weights), -1)
    w = np.asarray(weights, float)[:, None]
    return float(np.sqrt(np.sum(w * (estimate - exact) ** 2) / np.sum(w * exact**2)))

_REASON = "needs cupy and a CUDA GPU (pip install xlangevin[gpu])"


def has_cupy() -> bool:
    """True if cupy imports and sees a CUDA device (cached after the first call)."""
    global _HAS_CUPY
    if _HAS_CUPY is None:
        _HAS_CUPY = cupy_available()
    return _HAS_CUPY


_HAS_CUPY: bool | None = None


def has_torch_cuda() -> bool:
    """True if torch imports and sees a CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def _marker(available, reason):
    import pytest

    skip = pytest.mark.skipif(not available(), reason=reason)

    def decorate(obj):
        return pytest.mark.gpu(skip(obj))

    return decorate


def __getattr__(name):
    # built lazily so that importing xlangevin.testing needs neither pytest nor a GPU probe
    if name in ("requires_cupy", "requires_gpu"):
        return _marker(has_cupy, _REASON)
    if name == "requires_cuda":
        return _marker(has_torch_cuda, "needs torch with a CUDA GPU")
    raise AttributeError(name)
