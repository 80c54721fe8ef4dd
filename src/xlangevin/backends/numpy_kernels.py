"""Reference kernels in plain numpy: the oracle that every fast backend is tested against.

Arithmetic convention shared by ALL backends (numpy, numba, cupy), so that labels agree exactly
-------------------------------------------------------------------------------------------------
The squared distance between a point ``x`` (float32 or float64) and a centre ``c`` (float64) is
computed in float64, in four lanes, without fused multiply-add:

    t_j    = float64(x_j) - c_j
    lane_l = sum over j = l, l+4, l+8, ... (ascending) of t_j * t_j      (l = 0..3, from 0.0)
    dist   = (lane_0 + lane_1) + (lane_2 + lane_3)

(the four lanes let the compiled kernels use SIMD registers without re-associating sums).
Tree descent goes to the RIGHT child iff ``dist_right < dist_left`` (ties -> left).
Nearest centroid takes the first index of the minimum (ties -> lower index).

Tree layouts
------------
*Public* (what :class:`xlangevin.partition.Partition` stores): for internal node ``k`` (root = 0)
``left_centroid[k]``, ``right_centroid[k]`` (float64, ``(n_nodes, d)``) and ``left_child[k]``,
``right_child[k]`` (int64): a value ``c >= 0`` is the internal node ``c``, a value ``c < 0`` is
the leaf (cell) ``-1 - c``. A tree with a single cell has no internal node.

*Packed* (what the compiled kernels descend, see :func:`pack_tree`): ``n_nodes + n_cells`` nodes,
``centers[k] = (left, right)`` of shape ``(2, d)``, ``children[k] = (left, right)`` as packed node
indices, where leaf ``l`` is node ``n_nodes + l`` and points to itself (so a descent may run past
a leaf without branching); the label is ``node - n_nodes``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LANES",
    "sqdist_rows",
    "tree_descend",
    "nearest_centroid",
    "pack_tree",
]

LANES = 4


def sqdist_rows(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Row-wise squared distances ``|x_i - c_i|^2`` (float64) in the canonical lane order.

    ``x`` has shape ``(m, d)`` (float32 or float64), ``c`` shape ``(m, d)`` or ``(d,)`` (float64).
    """
    m, d = x.shape
    lanes = np.zeros((LANES, m), dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    for j in range(d):
        t = x[:, j].astype(np.float64) - (c[..., j])
        lanes[j % LANES] += t * t
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])


def tree_descend(
    X: np.ndarray,
    left_centroid: np.ndarray,
    right_centroid: np.ndarray,
    left_child: np.ndarray,
    right_child: np.ndarray,
    chunk: int = 1 << 16,
) -> np.ndarray:
    """Leaf label (int64) of every row of ``X`` by descending the public tree layout.

    Vectorized level by level over the points that have not reached a leaf yet.
    """
    n = X.shape[0]
    out = np.zeros(n, dtype=np.int64)
    if left_child.shape[0] == 0 or n == 0:  # single-cell tree
        return out
    for s in range(0, n, chunk):
        x = X[s : s + chunk]
        m = x.shape[0]
        node = np.zeros(m, dtype=np.int64)
        active = np.arange(m)
        while active.size:
            nd = node[active]
            xa = x[active]
            da = sqdist_rows(xa, left_centroid[nd])
            db = sqdist_rows(xa, right_centroid[nd])
            nxt = np.where(db < da, right_child[nd], left_child[nd])
            node[active] = nxt
            active = active[nxt >= 0]
        out[s : s + m] = -1 - node
    return out


def nearest_centroid(X: np.ndarray, centroids: np.ndarray, chunk_elems: int = 1 << 22) -> np.ndarray:
    """Index (int64) of the nearest centroid for every row of ``X`` (brute force, chunked)."""
    n, d = X.shape
    k = centroids.shape[0]
    C = np.asarray(centroids, dtype=np.float64)
    out = np.empty(n, dtype=np.int64)
    step = max(1, chunk_elems // max(k, 1))
    for s in range(0, n, step):
        x = X[s : s + step]
        lanes = np.zeros((LANES, x.shape[0], k), dtype=np.float64)
        for j in range(d):
            t = x[:, j].astype(np.float64)[:, None] - C[None, :, j]
            lanes[j % LANES] += t * t
        dist = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
        out[s : s + x.shape[0]] = np.argmin(dist, axis=1)
    return out


def pack_tree(
    left_centroid: np.ndarray,
    right_centroid: np.ndarray,
    left_child: np.ndarray,
    right_child: np.ndarray,
    n_cells: int,
    index_dtype=np.int64,
    pad: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Packed layout ``(centers (n_nodes + n_cells, 2, d') float64, children (n_nodes + n_cells, 2))``.

    Leaves become self-looping nodes ``n_nodes + leaf`` with zero centres. With ``pad=True`` the
    centres get zero columns up to ``d' = 4 ceil(d / 4)`` (for the 4-lane numba kernels).
    """
    n_int, d = left_centroid.shape
    n_tot = n_int + n_cells
    dp = -(-d // LANES) * LANES if pad else d
    centers = np.zeros((n_tot, 2, dp), dtype=np.float64)
    centers[:n_int, 0, :d] = left_centroid
    centers[:n_int, 1, :d] = right_centroid
    children = np.empty((n_tot, 2), dtype=index_dtype)
    for side, ch in enumerate((left_child, right_child)):
        ch = np.asarray(ch, dtype=np.int64)
        children[:n_int, side] = np.where(ch >= 0, ch, n_int + (-1 - ch))
    leaves = np.arange(n_int, n_tot, dtype=index_dtype)
    children[n_int:, 0] = leaves
    children[n_int:, 1] = leaves
    return centers, children


def accumulate_cells(labels, z, x, n_cells):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` (the KGMM accumulation), by bincount."""
    labels = np.asarray(labels)
    count = np.bincount(labels, minlength=n_cells).astype(np.int64)
    sum_z = np.stack([np.bincount(labels, z[:, j], n_cells) for j in range(z.shape[1])], axis=1)
    sum_x = np.stack([np.bincount(labels, x[:, j], n_cells) for j in range(x.shape[1])], axis=1)
    sum_z2 = np.bincount(labels, np.einsum("ij,ij->i", z, z, dtype=np.float64), n_cells)
    return count, sum_z.reshape(n_cells, z.shape[1]), sum_x.reshape(n_cells, x.shape[1]), sum_z2
