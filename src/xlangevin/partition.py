"""State-space partition: the modified bisecting k-means tree (METHODS.md §1).

:class:`BisectingPartition` (estimator: parameters only) ``.fit(X)`` returns a :class:`Partition`
(immutable model: the tree as flat arrays) whose :meth:`Partition.assign` labels new points.

Algorithm
---------
The tree is built on ``m = min(n, max_tree_samples)`` rows of ``X`` (``max_tree_samples``
defaults to ``ceil(100 / p_min)``; rows drawn without replacement from a
``numpy.random.Generator`` seeded with ``seed``). EVERY node holding more than
``floor(2 p_min m)`` of them is split with 2-means: greedy k-means++ seeding (``n_local_trials``
candidates for the second centre), then Lloyd passes until convergence (no label changes, or
centre movement below ``tol``; at most ``max_iter``). A node whose 2-means gives an empty child
(e.g. identical points) becomes a leaf. There is no maximum number of cells;
``N_C ~ 0.7 / p_min``. The set of splits does not depend on the order in which nodes are
processed; they are processed level by level (nodes of a level in parallel, the big top nodes
with parallel Lloyd passes, all with one fixed summation order, so the tree depends on ``seed``
only, never on the number of threads), and numbered depth first.

The child centroids stored at a node are exactly those with which its points were finally split,
and every distance is computed with the convention of :mod:`xlangevin.backends.numpy_kernels`
(float64, four lanes, ties to the left) in building and in every assignment backend: re-assigning
the tree-building points by tree descent reproduces their leaves exactly, on every backend.

Tree layout (also the NetCDF layout, see :meth:`Partition.to_dataset`)
----------------------------------------------------------------------
Internal nodes ``k = 0 .. n_nodes-1`` (root 0, depth-first preorder) hold ``left_centroid[k]``,
``right_centroid[k]`` (float64, ``(n_nodes, d)``) and ``left_child[k]``, ``right_child[k]``
(int64): ``c >= 0`` is internal node ``c``, ``c < 0`` is cell (leaf) ``-1 - c``. Cells
``0 .. n_cells-1`` are numbered depth first, left before right, and carry ``cell_centroid``
(mean of their tree-building points), ``cell_count`` (how many) and ``cell_depth``.
"""

from __future__ import annotations

import math
import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__
from .backends import import_cupy, is_cupy_array, resolve_backend
from .backends import numpy_kernels as _npk

__all__ = ["BisectingPartition", "Partition"]

FORMAT_VERSION = 1
_MODEL_NAME = "xlangevin.Partition"
_ARITHMETIC = "float64, 4 lanes (j mod 4) summed (l0+l1)+(l2+l3), no FMA; ties to the left child"


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _is_dask(a) -> bool:
    return type(a).__module__.split(".", 1)[0] == "dask"


def _check_shape(shape, what="X"):
    if len(shape) != 2:
        hint = " (for a single feature use X.reshape(-1, 1))" if len(shape) == 1 else ""
        raise ValueError(
            f"{what} must be a 2-D array (n_samples, n_features); got shape {tuple(shape)}{hint}"
        )


def _float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiu":
        raise ValueError(f"X must hold real numbers (float or int); got dtype {dtype}")
    if dtype in (np.float32, np.float64):
        return dtype
    return np.dtype(np.float64)


def _host_array(X) -> np.ndarray:
    """2-D float32/float64 C-contiguous numpy array from any array-like (no NaN check)."""
    if is_cupy_array(X):
        X = import_cupy().asnumpy(X)
    X = np.asarray(X)
    _check_shape(X.shape)
    return np.ascontiguousarray(X, dtype=_float_dtype(X.dtype))


def _all_finite(X: np.ndarray) -> bool:
    """True if no NaN/inf: one summation pass (no temporary); the full check only if the sum is
    not finite (NaN and inf propagate through a sum; an overflow only costs the second pass)."""
    if X.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(X.sum()):
            return True
    return bool(np.isfinite(X).all())


_NONFINITE = "X contains NaN or inf values; drop or fill them first"


def _check_finite_host(X: np.ndarray) -> None:
    if not _all_finite(X):
        raise ValueError(f"{_NONFINITE} (e.g. X[np.isfinite(X).all(axis=1)])")


# ----------------------------------------------------------------------------------------------
# parameters: one declarative table, checked in fit
# ----------------------------------------------------------------------------------------------
def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


#: name -> (accepts None, check, requirement as text)
_PARAMS: dict[str, tuple[bool, Any, str]] = {
    "p_min": (True, lambda v: _is_real(v) and 0.0 < v <= 0.5, "a number in (0, 0.5]"),
    "n_clusters": (True, lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "max_tree_samples": (True, lambda v: _is_int(v) and v >= 20, "an integer >= 20"),
    "seed": (
        True,
        lambda v: (_is_int(v) and v >= 0) or isinstance(v, np.random.Generator),
        "a non-negative integer or a numpy.random.Generator",
    ),
    "max_iter": (False, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "tol": (False, lambda v: _is_real(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    "n_local_trials": (False, lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
}


class BisectingPartition:
    """Modified bisecting k-means (METHODS.md §1): every node with more than ``2 p_min`` of the
    tree-building points is split in two.

    Parameters
    ----------
    p_min : float in (0, 0.5]
        Minimum cell probability; leaves hold at most ``floor(2 p_min m)`` of the ``m``
        tree-building points; ``N_C ~ 0.7 / p_min``. Give ``p_min`` or ``n_clusters``.
    n_clusters : int >= 2
        Convenience: sets ``p_min = 0.7 / n_clusters`` (the number of cells is then about
        ``n_clusters``, not exactly).
    max_tree_samples : int, optional
        Build the tree on at most this many rows (default ``ceil(100 / p_min)``), drawn at random.
    seed : int or numpy.random.Generator, optional
        Seeds the subsample and the k-means++ draws; the same seed gives the same tree.
    max_iter : int
        Maximum Lloyd passes per split (default 300).
    tol : float
        Lloyd convergence: stop when no label changes or when the centres would move by less than
        ``tol`` times the node's scale (squared movement of both centres relative to the mean
        squared distance to the first seed; default 1e-4, like scikit-learn's ``tol``). ``tol=0``
        iterates until no label changes, which on symmetric data (an isotropic Gaussian) can take
        hundreds of passes for a nearly identical split.
    n_local_trials : int
        Candidates tried for the second k-means++ centre (default 2, as scikit-learn for k=2).

    Threads: the build uses ``numba.get_num_threads()`` threads; the tree does not depend on it.
    """

    def __init__(
        self,
        p_min: float | None = None,
        n_clusters: int | None = None,
        max_tree_samples: int | None = None,
        seed: int | np.random.Generator | None = None,
        *,
        max_iter: int = 300,
        tol: float = 1e-4,
        n_local_trials: int = 2,
    ):
        self.p_min = p_min
        self.n_clusters = n_clusters
        self.max_tree_samples = max_tree_samples
        self.seed = seed
        self.max_iter = max_iter
        self.tol = tol
        self.n_local_trials = n_local_trials

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in _PARAMS}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
        return f"BisectingPartition({args})"

    # -- validation ---------------------------------------------------------------------------
    def _validated_params(self) -> dict:
        params = self.get_params()
        for name, (nullable, ok, need) in _PARAMS.items():
            v = params[name]
            if v is None and nullable:
                continue
            if not ok(v):
                raise ValueError(f"{name} must be {need}; got {v!r}")
        if params["p_min"] is not None and params["n_clusters"] is not None:
            raise ValueError("give either p_min or n_clusters, not both")
        if params["p_min"] is None:
            if params["n_clusters"] is None:
                raise ValueError(
                    "give p_min (minimum cell probability, e.g. p_min=1e-3) or n_clusters "
                    "(e.g. n_clusters=700, which sets p_min = 0.7 / n_clusters)"
                )
            params["p_min"] = 0.7 / params["n_clusters"]
        params["p_min"] = float(params["p_min"])
        return params

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X) -> "Partition":
        """Build the tree on (a random subsample of) ``X`` of shape (n_samples, n_features).

        ``X`` may be numpy, cupy (subsampled on the GPU, then built on the host) or dask (only
        the subsample is computed, and only it is checked for NaN).
        """
        params = self._validated_params()
        p_min = params["p_min"]
        shape = getattr(X, "shape", None)
        if shape is None:
            X = np.asarray(X)
            shape = X.shape
        _check_shape(shape)
        n, d = int(shape[0]), int(shape[1])
        if d < 1:
            raise ValueError("X must have at least one feature (column)")
        cap = params["max_tree_samples"] or math.ceil(100.0 / p_min)
        m = min(n, cap)
        if m == 0 or p_min < 10.0 / m:
            need = math.ceil(10.0 / p_min)
            src = (
                f"n={n} samples" if m == n else f"max_tree_samples={m} tree-building samples"
            )
            raise ValueError(
                f"p_min={p_min:g} is too small for {src}: every cell needs about 10 points or "
                f"more (p_min >= 10/{m} = {10.0 / max(m, 1):g}). Use a larger p_min (or fewer "
                f"n_clusters, at most {max(int(0.07 * m), 0)}), or give at least {need} samples."
            )
        seed = params["seed"]
        rng = np.random.default_rng(seed)
        sub = None
        if m < n:
            sub = np.sort(rng.choice(n, size=m, replace=False))
        W = _gather(X, sub)  # validated, finite, C-contiguous float32/float64 copy
        threshold = int(math.floor(2.0 * p_min * m * (1.0 + 1e-12)))
        tree = _build_tree(
            W, threshold, rng, params["n_local_trials"], params["max_iter"], params["tol"]
        )
        attrs = {
            "model": _MODEL_NAME,
            "format_version": FORMAT_VERSION,
            "xlangevin_version": __version__,
            "p_min": p_min,
            "n_clusters_requested": int(params["n_clusters"] or 0),
            "split_threshold": threshold,
            "n_samples_fit": n,
            "n_tree_samples": m,
            "max_iter": int(params["max_iter"]),
            "tol": float(params["tol"]),
            "n_lloyd_passes": int(tree["stats"][:, 3].sum()),
            "n_local_trials": int(params["n_local_trials"]),
            "input_dtype": str(W.dtype),
            "arithmetic": _ARITHMETIC,
        }
        if _is_int(seed):
            attrs["seed"] = int(seed)
        part = Partition(
            tree["left_centroid"],
            tree["right_centroid"],
            tree["left_child"],
            tree["right_child"],
            tree["cell_centroid"],
            tree["cell_count"],
            tree["cell_depth"],
            attrs=attrs,
        )
        part._build_index = _readonly(sub if sub is not None else np.arange(n, dtype=np.int64))
        part._build_labels = _readonly(tree["labels"])
        return part

    def fit_assign(self, X):
        """``fit(X)`` and the tree-descent labels of all rows of ``X``: ``(partition, labels)``."""
        part = self.fit(X)
        return part, part.assign(X)


def _gather(X, sub) -> np.ndarray:
    """Rows ``sub`` (all if None) of X as a checked host float array."""
    if is_cupy_array(X):
        cp = import_cupy()
        _check_shape(X.shape)
        _float_dtype(X.dtype)
        if not bool(cp.isfinite(X).all()):
            raise ValueError(_NONFINITE)
        Xs = X if sub is None else X[cp.asarray(sub)]
        return _host_array(cp.asnumpy(Xs))
    if _is_dask(X):
        Xs = X if sub is None else X[sub]
        W = _host_array(Xs.compute())
        _check_finite_host(W)
        return W
    X = np.asarray(X)
    dt = _float_dtype(X.dtype)
    if X.dtype != dt:
        X = X.astype(dt)
    _check_finite_host(X)
    W = X if sub is None else X[sub]
    return np.array(W, dtype=dt, order="C", copy=True)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------------
# the tree builder (driver over the numba kernels)
# ----------------------------------------------------------------------------------------------
def _build_tree(
    W: np.ndarray, threshold: int, rng: np.random.Generator, n_trials: int, max_iter: int,
    tol: float = 0.0,
):
    from .backends import numba_kernels as nbk

    m, d = W.shape
    d4 = nbk.padded_width(d)
    # float64 working copy, zero-padded for the 4-lane kernels (the distance convention converts
    # every coordinate to float64 first, so this changes no number; one compiled specialization)
    W_in = np.zeros((m, d4), dtype=np.float64)
    W_in[:, :d] = W
    del W
    W_out = np.zeros_like(W_in)
    idx_in = np.arange(m, dtype=np.int64)
    idx_out = np.empty(m, dtype=np.int64)
    lab = np.empty(m, dtype=np.int8)
    dbuf = np.empty(m, dtype=np.float64)
    labels = np.empty(m, dtype=np.int64)  # BFS leaf node id, renumbered below
    nthreads = max(1, nbk.num_threads())
    # the numba kernels release the GIL: nodes of a level (or chunks of a big node's Lloyd pass)
    # run on the threads of this pool, as many as numba is allowed to use
    pool = ThreadPoolExecutor(max_workers=nthreads) if nthreads > 1 else None
    try:
        return _build_levels(W_in, W_out, idx_in, idx_out, lab, dbuf, labels, d, threshold, rng,
                             n_trials, max_iter, tol, nthreads, pool)
    finally:
        if pool is not None:
            pool.shutdown()


def _build_levels(W_in, W_out, idx_in, idx_out, lab, dbuf, labels, d, threshold, rng, n_trials,
                  max_iter, tol, nthreads, pool):
    """Split level by level; returns the tree in the public layout (``d`` true features)."""
    from .backends import numba_kernels as nbk

    m, d4 = W_in.shape
    stats = []  # per level: (depth, nodes split, points, Lloyd passes, point-passes)

    # per-level records, concatenated at the end (BFS ids are consecutive level by level)
    rec_internal, rec_left, rec_right, rec_depth, rec_centers, rec_means, rec_counts = ([] for _ in range(7))
    lv_start = np.array([0], dtype=np.int64)
    lv_end = np.array([m], dtype=np.int64)
    lv_depth = 0
    next_id = 1
    while lv_start.size:
        L = lv_start.size
        size = lv_end - lv_start
        status = np.ones(L, dtype=np.int8)  # 1 = leaf
        n_left = np.zeros(L, dtype=np.int64)
        centers = np.zeros((L, 2, d4), dtype=np.float64)
        sel = np.flatnonzero(size > threshold)
        k = sel.size
        if k:
            S = np.ascontiguousarray(lv_start[sel])
            E = np.ascontiguousarray(lv_end[sel])
            U = rng.random((k, 1 + n_trials))
            c_k = np.zeros((k, 2, d4), dtype=np.float64)
            st_k = np.ones(k, dtype=np.int8)
            nl_k = np.zeros(k, dtype=np.int64)
            it_k = np.zeros(k, dtype=np.int64)
            sz = E - S
            big = sz * nthreads > sz.sum()
            if nthreads == 1:
                big[:] = False
            for q in np.flatnonzero(big):
                st, nl, it = nbk.split_node_parallel(
                    pool, nthreads, W_in, idx_in, W_out, idx_out, lab, dbuf, S[q], E[q], U[q],
                    n_trials, max_iter, tol, c_k[q],
                )
                st_k[q], nl_k[q], it_k[q] = st, nl, it
            rest = np.flatnonzero(~big)
            if rest.size:
                # longest-processing-time first, dealt in a snake over the threads
                order = rest[np.argsort(-sz[rest], kind="stable")]
                T = min(nthreads, rest.size)
                pos = np.arange(order.size) % (2 * T)
                owner = np.where(pos < T, pos, 2 * T - 1 - pos)
                task_order = np.ascontiguousarray(order[np.argsort(owner, kind="stable")])
                offsets = np.zeros(T + 1, dtype=np.int64)
                offsets[1:] = np.cumsum(np.bincount(owner, minlength=T))
                args = (W_in, idx_in, W_out, idx_out, lab, dbuf, S, E, U, n_trials, max_iter,
                        tol, task_order)
                outs = (c_k, st_k, nl_k, it_k)
                if T == 1:
                    nbk.split_nodes(*args, 0, offsets[1], *outs)
                else:
                    futures = [pool.submit(nbk.split_nodes, *args, offsets[t], offsets[t + 1], *outs)
                               for t in range(T)]
                    for f in futures:
                        f.result()
            status[sel] = st_k
            n_left[sel] = nl_k
            stats.append((lv_depth, k, int(sz.sum()), int(it_k.sum()), int((it_k * sz).sum())))
            centers[sel] = c_k
        split = status == 0
        ids = np.arange(next_id - L, next_id, dtype=np.int64)  # this level's BFS ids
        # leaves of this level: means, counts, labels (their rows sit in W_in)
        leaf = ~split
        means = np.zeros((L, d4), dtype=np.float64)
        if leaf.any():
            li = np.flatnonzero(leaf)
            m_l = np.zeros((li.size, d4), dtype=np.float64)
            nbk.finalize_leaves(
                W_in, idx_in, np.ascontiguousarray(lv_start[li]), np.ascontiguousarray(lv_end[li]),
                ids[li], labels, m_l,
            )
            means[li] = m_l
        # children of the split nodes: left then right, in level order
        ns = int(split.sum())
        left = np.full(L, -1, dtype=np.int64)
        right = np.full(L, -1, dtype=np.int64)
        left[split] = next_id + 2 * np.arange(ns)
        right[split] = left[split] + 1
        rec_internal.append(split)
        rec_left.append(left)
        rec_right.append(right)
        rec_depth.append(np.full(L, lv_depth, dtype=np.int64))
        rec_centers.append(centers)
        rec_means.append(means)
        rec_counts.append(size)
        s_sp, e_sp, nl_sp = lv_start[split], lv_end[split], n_left[split]
        nxt_start = np.empty(2 * ns, dtype=np.int64)
        nxt_end = np.empty(2 * ns, dtype=np.int64)
        nxt_start[0::2], nxt_end[0::2] = s_sp, s_sp + nl_sp
        nxt_start[1::2], nxt_end[1::2] = s_sp + nl_sp, e_sp
        next_id += 2 * ns
        lv_start, lv_end, lv_depth = nxt_start, nxt_end, lv_depth + 1
        W_in, W_out = W_out, W_in
        idx_in, idx_out = idx_out, idx_in

    internal = np.concatenate(rec_internal)
    bleft = np.concatenate(rec_left)
    bright = np.concatenate(rec_right)
    depth = np.concatenate(rec_depth)
    bcenters = np.concatenate(rec_centers)[:, :, :d]
    bmeans = np.concatenate(rec_means)[:, :d]
    bcounts = np.concatenate(rec_counts)

    # depth-first (preorder, left first) numbering of internal nodes and of leaves
    N = internal.size
    new_int = np.full(N, -1, dtype=np.int64)
    new_leaf = np.full(N, -1, dtype=np.int64)
    stack = [0]
    ci = cl = 0
    il = internal.tolist()
    ll, rl = bleft.tolist(), bright.tolist()
    while stack:
        b = stack.pop()
        if il[b]:
            new_int[b] = ci
            ci += 1
            stack.append(rl[b])
            stack.append(ll[b])
        else:
            new_leaf[b] = cl
            cl += 1
    ib = np.flatnonzero(internal)
    lb = np.flatnonzero(~internal)
    n_int, n_cells = ib.size, lb.size

    def encode(child):
        return np.where(internal[child], new_int[child], -1 - new_leaf[child])

    left_centroid = np.zeros((n_int, d))
    right_centroid = np.zeros((n_int, d))
    left_child = np.zeros(n_int, dtype=np.int64)
    right_child = np.zeros(n_int, dtype=np.int64)
    pos = new_int[ib]
    left_centroid[pos] = bcenters[ib, 0]
    right_centroid[pos] = bcenters[ib, 1]
    left_child[pos] = encode(bleft[ib])
    right_child[pos] = encode(bright[ib])
    cell_centroid = np.zeros((n_cells, d))
    cell_count = np.zeros(n_cells, dtype=np.int64)
    cell_depth = np.zeros(n_cells, dtype=np.int64)
    pos = new_leaf[lb]
    cell_centroid[pos] = bmeans[lb]
    cell_count[pos] = bcounts[lb]
    cell_depth[pos] = depth[lb]
    return {
        "left_centroid": left_centroid,
        "right_centroid": right_centroid,
        "left_child": left_child,
        "right_child": right_child,
        "cell_centroid": cell_centroid,
        "cell_count": cell_count,
        "cell_depth": cell_depth,
        "labels": new_leaf[labels],
        "stats": np.array(stats, dtype=np.int64).reshape(-1, 5),
    }


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------
def _check_tree(left_child, right_child, n_cells):
    n_int = left_child.shape[0]
    if right_child.shape != (n_int,):
        raise ValueError("left_child and right_child must have the same length")
    if n_int == 0:
        if n_cells != 1:
            raise ValueError(f"a tree without internal nodes has exactly one cell, not {n_cells}")
        return
    ch = np.concatenate([left_child, right_child])
    parent = np.concatenate([np.arange(n_int), np.arange(n_int)])
    inner = ch >= 0
    if np.any(ch[inner] >= n_int) or np.any(ch[inner] <= parent[inner]):
        raise ValueError("corrupt tree: internal child indices must lie in (parent, n_nodes)")
    if not np.array_equal(np.bincount(ch[inner], minlength=n_int)[1:], np.ones(n_int - 1)):
        raise ValueError("corrupt tree: every internal node except the root needs one parent")
    leaves = -1 - ch[~inner]
    if leaves.size != n_cells or not np.array_equal(np.sort(leaves), np.arange(n_cells)):
        raise ValueError("corrupt tree: every cell must be the child of exactly one node")


class Partition:
    """A fitted bisecting k-means tree (immutable). See the module docstring for the layout.

    Use :meth:`assign` (or call the object) to label points; :meth:`to_dataset` /
    :meth:`from_dataset` / :meth:`to_netcdf` / :meth:`open` to store it.
    """

    def __init__(
        self,
        left_centroid,
        right_centroid,
        left_child,
        right_child,
        cell_centroid,
        cell_count,
        cell_depth,
        attrs: dict | None = None,
    ):
        lc = np.array(left_centroid, dtype=np.float64, order="C", ndmin=2)
        rc = np.array(right_centroid, dtype=np.float64, order="C", ndmin=2)
        cc = np.array(cell_centroid, dtype=np.float64, order="C", ndmin=2)
        d = cc.shape[1]
        lc, rc = lc.reshape(-1, d), rc.reshape(-1, d)
        lch = np.array(left_child, dtype=np.int64).reshape(-1)
        rch = np.array(right_child, dtype=np.int64).reshape(-1)
        cnt = np.array(cell_count, dtype=np.int64).reshape(-1)
        dep = np.array(cell_depth, dtype=np.int64).reshape(-1)
        n_cells = cc.shape[0]
        if lc.shape != rc.shape or lc.shape[0] != lch.shape[0]:
            raise ValueError("left/right centroids and children must describe the same nodes")
        if cnt.shape != (n_cells,) or dep.shape != (n_cells,):
            raise ValueError("cell_count and cell_depth need one entry per cell")
        _check_tree(lch, rch, n_cells)
        self._left_centroid = _readonly(lc)
        self._right_centroid = _readonly(rc)
        self._left_child = _readonly(lch)
        self._right_child = _readonly(rch)
        self._cell_centroid = _readonly(cc)
        self._cell_count = _readonly(cnt)
        self._cell_depth = _readonly(dep)
        self.attrs = dict(attrs or {})
        self._packed = {}
        self._device = {}
        self._build_index = None
        self._build_labels = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return int(self._cell_centroid.shape[0])

    @property
    def n_nodes(self) -> int:
        """Number of internal nodes (``n_cells - 1``)."""
        return int(self._left_child.shape[0])

    @property
    def n_features(self) -> int:
        return int(self._cell_centroid.shape[1])

    @property
    def centroids(self) -> np.ndarray:
        """Cell centroids (n_cells, d): mean of the tree-building points of each cell."""
        return self._cell_centroid

    @property
    def counts(self) -> np.ndarray:
        """Tree-building points per cell."""
        return self._cell_count

    @property
    def cell_depth(self) -> np.ndarray:
        return self._cell_depth

    @property
    def depth(self) -> int:
        """Maximum depth of a cell (the root is depth 0)."""
        return int(self._cell_depth.max()) if self.n_cells else 0

    @property
    def p_min(self) -> float | None:
        v = self.attrs.get("p_min")
        return None if v is None else float(v)

    @property
    def seed(self) -> int | None:
        v = self.attrs.get("seed")
        return None if v is None else int(v)

    @property
    def left_centroid(self) -> np.ndarray:
        return self._left_centroid

    @property
    def right_centroid(self) -> np.ndarray:
        return self._right_centroid

    @property
    def left_child(self) -> np.ndarray:
        return self._left_child

    @property
    def right_child(self) -> np.ndarray:
        return self._right_child

    @property
    def build_index(self) -> np.ndarray | None:
        """Rows of the fitted ``X`` the tree was built on (None for a loaded partition)."""
        return self._build_index

    @property
    def build_labels(self) -> np.ndarray | None:
        """Cell of each tree-building row, from the build (None for a loaded partition)."""
        return self._build_labels

    def __repr__(self) -> str:
        p = self.p_min
        ps = "None" if p is None else f"{p:.3g}"
        return (
            f"Partition(n_cells={self.n_cells}, n_features={self.n_features}, "
            f"depth={self.depth}, p_min={ps}, seed={self.seed})"
        )

    # -- assignment ---------------------------------------------------------------------------
    def _packed_tree(self, pad: bool = False):
        """Packed layout for the compiled kernels (cached): pad=True for numba, False for cupy."""
        key = ("tree", pad)
        if key not in self._packed:
            self._packed[key] = _npk.pack_tree(
                self._left_centroid, self._right_centroid, self._left_child, self._right_child,
                self.n_cells, pad=pad,
            )
        return self._packed[key]

    def _records(self):
        """The numba descent layout (``numba_kernels.pack_records``), cached."""
        if "records" not in self._packed:
            from .backends import numba_kernels as nbk

            self._packed["records"] = nbk.pack_records(*self._packed_tree(pad=True))
        return self._packed["records"]

    def _padded_centroids(self):
        if "centroids" not in self._packed:
            d = self.n_features
            C = np.zeros((self.n_cells, -(-d // 4) * 4))
            C[:, :d] = self._cell_centroid
            self._packed["centroids"] = C
        return self._packed["centroids"]

    def assign(self, X, method: str = "tree", backend: str | None = None, check_finite: bool = True):
        """Cell label (int64) of every row of ``X`` (n, d).

        method : ``"tree"`` (descent: at each node go to the nearer child centroid; the
            partition's own cells) or ``"nearest"`` (nearest cell centroid; a different partition).
        backend : ``None`` (cupy for cupy arrays, else numba), ``"numba"``, ``"numpy"``
            (reference) or ``"cupy"``. The labels are a cupy array iff the backend is cupy.
        check_finite : reject NaN/inf rows (default True).
        """
        if method not in ("tree", "nearest"):
            raise ValueError(f"method must be 'tree' or 'nearest'; got {method!r}")
        backend = resolve_backend(X, backend)
        if backend == "cupy":
            return self._assign_cupy(X, method, check_finite)
        X = _host_array(X)
        self._check_features(X.shape[1])
        if backend == "numpy":
            if check_finite:
                _check_finite_host(X)
            if method == "tree":
                return _npk.tree_descend(
                    X, self._left_centroid, self._right_centroid, self._left_child,
                    self._right_child,
                )
            return _npk.nearest_centroid(X, self._cell_centroid)
        from .backends import numba_kernels as nbk

        out = np.empty(X.shape[0], dtype=np.int64)
        if X.shape[0] == 0:
            return out
        if method == "tree":
            bad = nbk.tree_descend_lockstep(X, self._records(), self.n_nodes, self.depth, out)
        else:
            bad = nbk.nearest_centroid(X, self._padded_centroids(), out)
        if check_finite and bad != 0.0:  # the kernels check finiteness while reading X
            _check_finite_host(X)
        return out

    __call__ = assign

    def _assign_cupy(self, X, method, check_finite):
        from .backends import cupy_kernels as cpk

        cp = import_cupy()
        X = cp.asarray(X)
        _check_shape(X.shape)
        _float_dtype(X.dtype)
        self._check_features(X.shape[1])
        if check_finite and X.size and not bool(cp.isfinite(X).all()):
            raise ValueError(_NONFINITE)
        dev = cp.cuda.runtime.getDevice()
        key = (dev, method)
        if key not in self._device:
            if method == "tree":
                centers, children = self._packed_tree()
                self._device[key] = (cp.asarray(centers), cp.asarray(children))
            else:
                self._device[key] = (cp.asarray(self._cell_centroid),)
        arrays = self._device[key]
        if method == "tree":
            return cpk.tree_descend(X, arrays[0], arrays[1], self.n_nodes)
        return cpk.nearest_centroid(X, arrays[0])

    def _check_features(self, d):
        if d != self.n_features:
            raise ValueError(
                f"X has {d} features but the partition was fitted on {self.n_features}"
            )

    # -- storage ------------------------------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """The tree as an :class:`xarray.Dataset` (plain arrays + attrs; NetCDF-ready)."""
        enc = "c >= 0: internal node c; c < 0: cell -1 - c"
        ds = xr.Dataset(
            {
                "left_centroid": (("node", "feature"), self._left_centroid,
                                  {"long_name": "centroid of the left child of each internal node"}),
                "right_centroid": (("node", "feature"), self._right_centroid,
                                   {"long_name": "centroid of the right child of each internal node"}),
                "left_child": ("node", self._left_child, {"long_name": "left child", "encoding_rule": enc}),
                "right_child": ("node", self._right_child, {"long_name": "right child", "encoding_rule": enc}),
                "cell_centroid": (("cell", "feature"), self._cell_centroid,
                                  {"long_name": "mean of the tree-building points of each cell"}),
                "cell_count": ("cell", self._cell_count,
                               {"long_name": "tree-building points in each cell"}),
                "cell_depth": ("cell", self._cell_depth,
                               {"long_name": "depth of each cell (root = 0)"}),
            },
            attrs={
                **self.attrs,
                "model": _MODEL_NAME,
                "format_version": FORMAT_VERSION,
                "n_cells": self.n_cells,
                "n_features": self.n_features,
                "depth": self.depth,
            },
        )
        ds.attrs.setdefault("xlangevin_version", __version__)
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "Partition":
        """Rebuild a :class:`Partition` from :meth:`to_dataset` output (e.g. read from NetCDF)."""
        model = ds.attrs.get("model", _MODEL_NAME)
        if model != _MODEL_NAME:
            raise ValueError(f"dataset holds a {model!r}, not a {_MODEL_NAME!r}")
        fv = int(ds.attrs.get("format_version", FORMAT_VERSION))
        if fv > FORMAT_VERSION:
            raise ValueError(
                f"partition format version {fv} is newer than this xlangevin understands "
                f"({FORMAT_VERSION}); upgrade xlangevin"
            )
        missing = [v for v in ("left_centroid", "right_centroid", "left_child", "right_child",
                               "cell_centroid", "cell_count", "cell_depth") if v not in ds]
        if missing:
            raise ValueError(f"dataset lacks the partition variables {missing}")
        d = ds.sizes.get("feature", 0)

        def arr(name, dtype):
            return np.asarray(ds[name].values, dtype=dtype)

        attrs = {k: _plain(v) for k, v in ds.attrs.items()
                 if k not in ("n_cells", "n_features", "depth")}
        return cls(
            arr("left_centroid", np.float64).reshape(-1, d),
            arr("right_centroid", np.float64).reshape(-1, d),
            arr("left_child", np.int64),
            arr("right_child", np.int64),
            arr("cell_centroid", np.float64).reshape(-1, d),
            arr("cell_count", np.int64),
            arr("cell_depth", np.int64),
            attrs=attrs,
        )

    def to_netcdf(self, path, **kwargs) -> None:
        """Write :meth:`to_dataset` to a NetCDF file."""
        self.to_dataset().to_netcdf(path, **kwargs)

    @classmethod
    def open(cls, path) -> "Partition":
        """Read a partition written by :meth:`to_netcdf`."""
        with xr.open_dataset(path) as ds:
            return cls.from_dataset(ds.load())


def _plain(v):
    """NetCDF attrs come back as numpy scalars; store plain Python values."""
    if isinstance(v, np.generic):
        return v.item()
    return v
