"""Assignment to the cells of a bisecting k-means tree: numpy reference and numba kernels.

Arithmetic convention shared by ALL backends (numpy, numba, cupy), so that labels agree exactly
-------------------------------------------------------------------------------------------------
The squared distance between a point ``x`` (float32 or float64) and a centre ``c`` (float64) is
computed in float64, in four lanes, without fused multiply-add:

    t_j    = float64(x_j) - c_j
    lane_l = sum over j = l, l+4, l+8, ... (ascending) of t_j * t_j      (l = 0..3, from 0.0)
    dist   = (lane_0 + lane_1) + (lane_2 + lane_3)

(the four lanes let the compiled kernels use SIMD registers without re-associating sums, see
:mod:`.lanes`). Tree descent goes to the RIGHT child iff ``dist_right < dist_left`` (ties ->
left). Nearest centroid takes the first index of the minimum (ties -> lower index).

Tree layouts
------------
*Public* (what :class:`xlangevin.partition.Partition` stores): for internal node ``k`` (root = 0)
``left_centroid[k]``, ``right_centroid[k]`` (float64, ``(n_nodes, d)``) and ``left_child[k]``,
``right_child[k]`` (int64): a value ``c >= 0`` is the internal node ``c``, a value ``c < 0`` is
the leaf (cell) ``-1 - c``. A tree with a single cell has no internal node.

*Packed* (what the compiled kernels descend, see :func:`pack_tree`): ``n_nodes + n_cells`` nodes,
``centers[k] = (left, right)`` of shape ``(2, d)``, ``children[k] = (left, right)`` as packed node
indices, where leaf ``l`` is node ``n_nodes + l`` and points to itself (so a descent may run past
a leaf without branching); the label is ``node - n_nodes``. :class:`TreeArrays` caches them.

Kernels (registered as ``"tree_descend"`` and ``"nearest_centroid"``, signature ``(X, tree,
check_finite) -> labels``):

* numpy — :func:`descend_reference` (vectorized level by level), :func:`nearest_reference`;
* numba — :func:`descend_lockstep` (the default: blocks of 16 points advance level by level,
  branch-free, four points per vector intrinsic call so that their dependency chains overlap;
  the tree is one int64 record per node, :func:`.lanes.pack_records`), :func:`descend_single`
  (one point at a time, the reference for the lockstep trick), :func:`nearest_numba`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import register
from .lanes import REC_OFF, pack_records, padded_width, vsqd1, vsqd2_rec, vsqd2x4_rec

__all__ = ["TreeArrays", "check_finite_rows", "sqdist_rows", "descend_reference",
           "nearest_reference", "pack_tree", "descend_single", "descend_lockstep",
           "nearest_numba", "LANES", "BLOCK"]

#: points advanced together by the lockstep descent
BLOCK = 16
#: blocks of BLOCK points handed to one parallel task by the descent kernels
_TASK_BLOCKS = 64

NONFINITE = "X contains NaN or inf values; drop or fill them first"


def _all_finite(X: np.ndarray) -> bool:
    """True if no NaN/inf: one summation pass (no temporary); the full check only if the sum is
    not finite (NaN and inf propagate through a sum; an overflow only costs the second pass)."""
    if X.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(X.sum()):
            return True
    return bool(np.isfinite(X).all())


def check_finite_rows(X: np.ndarray) -> None:
    """Raise a ValueError that says what to do if ``X`` holds NaN or inf."""
    if not _all_finite(X):
        raise ValueError(f"{NONFINITE} (e.g. X[np.isfinite(X).all(axis=1)])")


# --------------------------------------------------------------------------------------------
# the tree's arrays and their packed layouts
# --------------------------------------------------------------------------------------------
class TreeArrays:
    """A tree in the public layout (read-only arrays) with the packed layouts each backend
    descends, built on first use and cached."""

    def __init__(self, left_centroid, right_centroid, left_child, right_child, cell_centroid,
                 depth: int):
        self.left_centroid, self.right_centroid = left_centroid, right_centroid
        self.left_child, self.right_child = left_child, right_child
        self.cell_centroid = cell_centroid
        self.depth = int(depth)
        self._cache = {}

    @property
    def n_nodes(self) -> int:
        return int(self.left_child.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.cell_centroid.shape[0])

    def packed(self, pad: bool = False):
        """:func:`pack_tree` of this tree (pad=True for numba, False for cupy), cached."""
        key = ("tree", pad)
        if key not in self._cache:
            self._cache[key] = pack_tree(self.left_centroid, self.right_centroid,
                                         self.left_child, self.right_child, self.n_cells,
                                         pad=pad)
        return self._cache[key]

    def records(self):
        """The numba descent layout (:func:`.lanes.pack_records`), cached."""
        if "records" not in self._cache:
            self._cache["records"] = pack_records(*self.packed(pad=True))
        return self._cache["records"]

    def padded_centroids(self):
        """Cell centroids zero-padded to a multiple of 4 columns, cached."""
        if "centroids" not in self._cache:
            C = np.zeros((self.n_cells, padded_width(self.cell_centroid.shape[1])))
            C[:, :self.cell_centroid.shape[1]] = self.cell_centroid
            self._cache["centroids"] = C
        return self._cache["centroids"]

    def cached(self, key, build):
        """``build()`` once per ``key`` (e.g. device copies), then the cached value."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


# --------------------------------------------------------------------------------------------
# numpy reference
# --------------------------------------------------------------------------------------------
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


def descend_reference(
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


def nearest_reference(X: np.ndarray, centroids: np.ndarray, chunk_elems: int = 1 << 22) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# numba kernels
@njit(cache=True)
def _load_block(X, i0, m, xb):
    """Rows i0:i0+m of X into the padded float64 block; returns sum(v - v): 0 iff all finite."""
    d = X.shape[1]
    bad = 0.0
    for k in range(m):
        for j in range(d):
            v = np.float64(X[i0 + k, j])
            xb[k, j] = v
            bad += v - v
    return bad


@njit(parallel=True, cache=True)
def descend_single(X, T, n_int, out):
    """Descend the tree one point at a time (records ``T``); writes the labels into ``out``.

    Returns 0.0 if every coordinate of X is finite (NaN otherwise), for free.
    """
    n = X.shape[0]
    d4 = (T.shape[1] - REC_OFF) // 2
    nblk = (n + BLOCK - 1) // BLOCK
    ntask = (nblk + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    bad = 0.0
    for t in prange(ntask):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        for blk in range(t * _TASK_BLOCKS, min((t + 1) * _TASK_BLOCKS, nblk)):
            i0 = blk * BLOCK
            m = min(BLOCK, n - i0)
            bad += _load_block(X, i0, m, xb)
            for k in range(m):
                nd = 0
                while nd < n_int:
                    da, db = vsqd2_rec(xb, k, T, nd)
                    nd = T[nd, 1] if db < da else T[nd, 0]
                out[i0 + k] = nd - n_int
    return bad


@njit(parallel=True, cache=True)
def descend_lockstep(X, T, n_int, depth, out):
    """Descend the tree BLOCK points at a time, level by level, without branches.

    Leaves of the packed layout loop onto themselves, so every point of a block takes the same
    steps; four points are evaluated together (interleaved vector code). ``depth`` is the
    maximum leaf depth; a block stops early once all its points sit on leaves. Returns 0.0 if
    every coordinate of X is finite (NaN otherwise).
    """
    n = X.shape[0]
    d4 = (T.shape[1] - REC_OFF) // 2
    nblk = (n + BLOCK - 1) // BLOCK
    ntask = (nblk + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    bad = 0.0
    for t in prange(ntask):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        node = np.empty(BLOCK, dtype=np.int64)
        for blk in range(t * _TASK_BLOCKS, min((t + 1) * _TASK_BLOCKS, nblk)):
            i0 = blk * BLOCK
            m = min(BLOCK, n - i0)
            bad += _load_block(X, i0, m, xb)
            for k in range(m):
                node[k] = 0
            for k in range(m, BLOCK):
                node[k] = n_int  # a leaf: loops onto itself
            for _lev in range(depth):
                for k in range(0, BLOCK, 4):
                    n0 = node[k]
                    n1 = node[k + 1]
                    n2 = node[k + 2]
                    n3 = node[k + 3]
                    a0, b0, a1, b1, a2, b2, a3, b3 = vsqd2x4_rec(xb, k, T, n0, n1, n2, n3)
                    node[k] = T[n0, np.int64(b0 < a0)]
                    node[k + 1] = T[n1, np.int64(b1 < a1)]
                    node[k + 2] = T[n2, np.int64(b2 < a2)]
                    node[k + 3] = T[n3, np.int64(b3 < a3)]
                done = True
                for k in range(BLOCK):
                    if node[k] < n_int:
                        done = False
                if done:
                    break
            for k in range(m):
                out[i0 + k] = node[k] - n_int
    return bad


@njit(parallel=True, cache=True)
def nearest_numba(X, C, out):
    """Index of the nearest row of ``C`` (padded, (k, d4)); first one on ties.

    Returns 0.0 if every coordinate of X is finite (NaN otherwise).
    """
    n = X.shape[0]
    d4 = C.shape[1]
    kc = C.shape[0]
    nblk = (n + BLOCK - 1) // BLOCK
    bad = 0.0
    for b in prange(nblk):
        xb = np.zeros((BLOCK, d4), dtype=np.float64)
        best = np.full(BLOCK, np.inf)
        bi = np.zeros(BLOCK, dtype=np.int64)
        i0 = b * BLOCK
        m = min(BLOCK, n - i0)
        bad += _load_block(X, i0, m, xb)
        for c in range(kc):
            for k in range(m):
                dist = vsqd1(xb, k, C, c)
                if dist < best[k]:
                    best[k] = dist
                    bi[k] = c
        for k in range(m):
            out[i0 + k] = bi[k]
    return bad



# --------------------------------------------------------------------------------------------
# the registered kernels: (X host float array, tree, check_finite) -> labels
# --------------------------------------------------------------------------------------------
@register("tree_descend", "numpy")
def _tree_descend_numpy(X, tree: TreeArrays, check_finite: bool = True):
    if check_finite:
        check_finite_rows(X)
    return descend_reference(X, tree.left_centroid, tree.right_centroid, tree.left_child,
                             tree.right_child)


@register("nearest_centroid", "numpy")
def _nearest_centroid_numpy(X, tree: TreeArrays, check_finite: bool = True):
    if check_finite:
        check_finite_rows(X)
    return nearest_reference(X, tree.cell_centroid)


@register("tree_descend", "numba")
def _tree_descend_numba(X, tree: TreeArrays, check_finite: bool = True):
    out = np.empty(X.shape[0], dtype=np.int64)
    if X.shape[0] == 0:
        return out
    bad = descend_lockstep(X, tree.records(), tree.n_nodes, tree.depth, out)
    if check_finite and bad != 0.0:  # the kernel checks finiteness while reading X
        check_finite_rows(X)
    return out


@register("nearest_centroid", "numba")
def _nearest_centroid_numba(X, tree: TreeArrays, check_finite: bool = True):
    out = np.empty(X.shape[0], dtype=np.int64)
    if X.shape[0] == 0:
        return out
    bad = nearest_numba(X, tree.padded_centroids(), out)
    if check_finite and bad != 0.0:
        check_finite_rows(X)
    return out
