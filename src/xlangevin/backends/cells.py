"""Per-cell sums of the KGMM passes (and any cell average): numpy reference and numba kernel.

``accumulate_cells(labels, z, x, n_cells) -> (count, sum z, sum x, sum |z|^2)`` over the rows
of one chunk, in float64 (registered as ``"accumulate_cells"``; the cupy version lives in
:mod:`.cupy_kernels`). Sums that add up across chunks: the scale-out unit of KGMM.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import register

__all__ = ["accumulate_cells_reference", "accumulate_cells_numba"]


@register("accumulate_cells", "numpy")
def accumulate_cells_reference(labels, z, x, n_cells):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` (the KGMM accumulation), by bincount."""
    labels = np.asarray(labels)
    count = np.bincount(labels, minlength=n_cells).astype(np.int64)
    sum_z = np.stack([np.bincount(labels, z[:, j], n_cells) for j in range(z.shape[1])], axis=1)
    sum_x = np.stack([np.bincount(labels, x[:, j], n_cells) for j in range(x.shape[1])], axis=1)
    sum_z2 = np.bincount(labels, np.einsum("ij,ij->i", z, z, dtype=np.float64), n_cells)
    return count, sum_z.reshape(n_cells, z.shape[1]), sum_x.reshape(n_cells, x.shape[1]), sum_z2


@njit(parallel=True, cache=True)
def _accumulate_cells(labels, z, x, n_cells, n_parts, count, sum_z, sum_x, sum_z2):
    n, d = z.shape
    size = (n + n_parts - 1) // n_parts
    for p in prange(n_parts):  # thread-local partial sums, one reduction at the end
        for i in range(p * size, min(n, (p + 1) * size)):
            k = labels[i]
            count[p, k] += 1
            acc = 0.0
            for j in range(d):
                zj = np.float64(z[i, j])
                sum_z[p, k, j] += zj
                sum_x[p, k, j] += np.float64(x[i, j])
                acc += zj * zj
            sum_z2[p, k] += acc


@register("accumulate_cells", "numba")
def accumulate_cells_numba(labels, z, x, n_cells):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` with thread-local partial sums."""
    n, d = z.shape
    n_parts = max(1, min(numba.get_num_threads(), n // 65536 + 1))
    count = np.zeros((n_parts, n_cells), np.int64)
    sum_z = np.zeros((n_parts, n_cells, d))
    sum_x = np.zeros((n_parts, n_cells, d))
    sum_z2 = np.zeros((n_parts, n_cells))
    _accumulate_cells(labels, z, x, n_cells, n_parts, count, sum_z, sum_x, sum_z2)
    return count.sum(0), sum_z.sum(0), sum_x.sum(0), sum_z2.sum(0)
