"""Row-wise log-sum-exp of a sparse log-kernel (the inner step of symmetric Sinkhorn).

``csr_row_lse(indptr, indices, logdata, u) -> out`` with ``out_i = log sum_{j in row i}
exp(logdata_ij + u_j)``, shifted by the row maximum (no overflow whatever the scale),
registered as ``"csr_row_lse"``: a numpy reference and a parallel numba kernel.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit

from . import register

__all__ = ["csr_row_lse_reference", "csr_row_lse_numba"]


@register("csr_row_lse", "numpy")
def csr_row_lse_reference(indptr, indices, logdata, u):
    """Reference: per-row maximum by ``np.maximum.reduceat``, then the shifted sums."""
    n = indptr.shape[0] - 1
    a = logdata + u[indices]
    rows = np.repeat(np.arange(n), np.diff(indptr))
    mx = np.full(n, -np.inf)
    np.maximum.at(mx, rows, a)
    s = np.zeros(n)
    np.add.at(s, rows, np.exp(a - mx[rows]))
    with np.errstate(divide="ignore"):
        return mx + np.log(s)


@njit(parallel=True, cache=True)
def _csr_row_lse(indptr, indices, logdata, u, out):
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        mx = -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            a = logdata[p] + u[indices[p]]
            if a > mx:
                mx = a
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            s += math.exp(logdata[p] + u[indices[p]] - mx)
        out[i] = mx + math.log(s)


@register("csr_row_lse", "numba")
def csr_row_lse_numba(indptr, indices, logdata, u):
    """Parallel over rows; each row in one thread (two passes: maximum, shifted sum)."""
    out = np.empty(indptr.shape[0] - 1)
    _csr_row_lse(indptr, indices, logdata, u, out)
    return out
