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
and every distance is computed with the convention of :mod:`xlangevin.backends.lanes`
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

import dataclasses
import math
import numbers

import numpy as np
import xarray as xr

from .backends import import_cupy, is_cupy_array, kernel, resolve_backend
from .backends.assign import NONFINITE, TreeArrays, check_finite_rows
from .base import Estimator, Interval, Model, Seed, provenance

__all__ = ["BisectingPartition", "Partition"]

_MODEL_NAME = "xlangevin.Partition"
_ARITHMETIC = "float64, 4 lanes (j mod 4) summed (l0+l1)+(l2+l3), no FMA; ties to the left child"
_TREE_VARS = ("left_centroid", "right_centroid", "left_child", "right_child", "cell_centroid",
              "cell_count", "cell_depth")


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




class BisectingPartition(Estimator):
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
    This estimator works on arrays (it is the partition of the estimators that use it), not on
    xarray objects.
    """

    p_min: float | None = None
    n_clusters: int | None = None
    max_tree_samples: int | None = None
    seed: object = None
    _: dataclasses.KW_ONLY
    max_iter: int = 300
    tol: float = 1e-4
    n_local_trials: int = 2

    _constraints = {
        "p_min": Interval(0, 0.5, closed="right", optional=True, text="a number in (0, 0.5]"),
        "n_clusters": Interval(2, None, integer=True, optional=True, text="an integer >= 2"),
        "max_tree_samples": Interval(20, None, integer=True, optional=True,
                                     text="an integer >= 20"),
        "seed": Seed(),
        "max_iter": Interval(1, None, integer=True, text="an integer >= 1"),
        "tol": Interval(0, 1, closed="left", text="a number in [0, 1)"),
        "n_local_trials": Interval(1, None, integer=True, text="an integer >= 1"),
    }

    def _check(self) -> None:
        if self.p_min is not None and self.n_clusters is not None:
            raise ValueError("give either p_min or n_clusters, not both")
        if self.p_min is None and self.n_clusters is None:
            raise ValueError(
                "give p_min (minimum cell probability, e.g. p_min=1e-3) or n_clusters "
                "(e.g. n_clusters=700, which sets p_min = 0.7 / n_clusters)"
            )

    @property
    def _p_min(self) -> float:
        return float(self.p_min if self.p_min is not None else 0.7 / self.n_clusters)

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X) -> "Partition":
        """Build the tree on (a random subsample of) ``X`` of shape (n_samples, n_features).

        ``X`` may be numpy, cupy (subsampled on the GPU, then built on the host) or dask (only
        the subsample is computed, and only it is checked for NaN).
        """
        self.validate()
        p_min = self._p_min
        shape = getattr(X, "shape", None)
        if shape is None:
            X = np.asarray(X)
            shape = X.shape
        _check_shape(shape)
        n, d = int(shape[0]), int(shape[1])
        if d < 1:
            raise ValueError("X must have at least one feature (column)")
        m = self._tree_sample_size(n, p_min)
        rng = np.random.default_rng(self.seed)
        sub = np.sort(rng.choice(n, size=m, replace=False)) if m < n else None
        W = _gather(X, sub)  # validated, finite, C-contiguous float32/float64 copy
        threshold = int(math.floor(2.0 * p_min * m * (1.0 + 1e-12)))
        tree = kernel("build_tree", "numba")(W, threshold, rng, self.n_local_trials,
                                             self.max_iter, self.tol)
        attrs = provenance(
            self, model=_MODEL_NAME, p_min=p_min,
            n_clusters_requested=int(self.n_clusters or 0), split_threshold=threshold,
            n_samples_fit=n, n_tree_samples=m, max_iter=int(self.max_iter),
            tol=float(self.tol), n_lloyd_passes=int(tree["stats"][:, 3].sum()),
            n_local_trials=int(self.n_local_trials), input_dtype=str(W.dtype),
            arithmetic=_ARITHMETIC)
        if isinstance(self.seed, numbers.Integral):  # an int here; a Generator is not stored
            attrs["seed"] = int(self.seed)
        else:
            del attrs["seed"]
        return Partition(*(tree[name] for name in _TREE_VARS), attrs=attrs,
                         build_index=sub if sub is not None else np.arange(n, dtype=np.int64),
                         build_labels=tree["labels"])

    def _tree_sample_size(self, n: int, p_min: float) -> int:
        """``m = min(n, max_tree_samples)``, checked to leave about 10 points a cell."""
        m = min(n, self.max_tree_samples or math.ceil(100.0 / p_min))
        if m == 0 or p_min < 10.0 / m:
            need = math.ceil(10.0 / p_min)
            src = f"n={n} samples" if m == n else f"max_tree_samples={m} tree-building samples"
            raise ValueError(
                f"p_min={p_min:g} is too small for {src}: every cell needs about 10 points or "
                f"more (p_min >= 10/{m} = {10.0 / max(m, 1):g}). Use a larger p_min (or fewer "
                f"n_clusters, at most {max(int(0.07 * m), 0)}), or give at least {need} samples."
            )
        return m

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
            raise ValueError(NONFINITE)
        Xs = X if sub is None else X[cp.asarray(sub)]
        return _host_array(cp.asnumpy(Xs))
    if _is_dask(X):
        Xs = X if sub is None else X[sub]
        W = _host_array(Xs.compute())
        check_finite_rows(W)
        return W
    X = np.asarray(X)
    dt = _float_dtype(X.dtype)
    if X.dtype != dt:
        X = X.astype(dt)
    check_finite_rows(X)
    W = X if sub is None else X[sub]
    return np.array(W, dtype=dt, order="C", copy=True)



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


def _readonly(a, dtype, ndmin=1) -> np.ndarray:
    a = np.array(a, dtype=dtype, order="C", ndmin=ndmin)
    a.flags.writeable = False
    return a


class Partition(Model):
    """A fitted bisecting k-means tree (immutable). See the module docstring for the layout.

    Use :meth:`assign` (or call the object) to label points; :meth:`to_dataset` /
    :meth:`from_dataset` / :meth:`to_netcdf` / :meth:`open` (or :func:`xlangevin.open_model`)
    to store it. ``build_index``/``build_labels``: the rows of the fitted ``X`` the tree was
    built on and their cells (None for a loaded partition).
    """

    def __init__(self, left_centroid, right_centroid, left_child, right_child, cell_centroid,
                 cell_count, cell_depth, attrs: dict | None = None, build_index=None,
                 build_labels=None):
        cc = _readonly(cell_centroid, np.float64, ndmin=2)
        d = cc.shape[1]
        lc = _readonly(np.reshape(left_centroid, (-1, d)), np.float64, ndmin=2)
        rc = _readonly(np.reshape(right_centroid, (-1, d)), np.float64, ndmin=2)
        lch = _readonly(np.reshape(left_child, -1), np.int64)
        rch = _readonly(np.reshape(right_child, -1), np.int64)
        cnt = _readonly(np.reshape(cell_count, -1), np.int64)
        dep = _readonly(np.reshape(cell_depth, -1), np.int64)
        n_cells = cc.shape[0]
        if lc.shape != rc.shape or lc.shape[0] != lch.shape[0]:
            raise ValueError("left/right centroids and children must describe the same nodes")
        if cnt.shape != (n_cells,) or dep.shape != (n_cells,):
            raise ValueError("cell_count and cell_depth need one entry per cell")
        _check_tree(lch, rch, n_cells)
        self.tree = TreeArrays(lc, rc, lch, rch, cc, int(dep.max()) if n_cells else 0)
        self.counts = cnt
        self.cell_depth = dep
        self.attrs = dict(attrs or {})
        self.build_index = None if build_index is None else _readonly(build_index, np.int64)
        self.build_labels = None if build_labels is None else _readonly(build_labels, np.int64)

    # -- properties ---------------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return self.tree.n_cells

    @property
    def n_nodes(self) -> int:
        """Number of internal nodes (``n_cells - 1``)."""
        return self.tree.n_nodes

    @property
    def n_features(self) -> int:
        return int(self.tree.cell_centroid.shape[1])

    @property
    def centroids(self) -> np.ndarray:
        """Cell centroids (n_cells, d): mean of the tree-building points of each cell."""
        return self.tree.cell_centroid

    @property
    def depth(self) -> int:
        """Maximum depth of a cell (the root is depth 0)."""
        return self.tree.depth

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
        return self.tree.left_centroid

    @property
    def right_centroid(self) -> np.ndarray:
        return self.tree.right_centroid

    @property
    def left_child(self) -> np.ndarray:
        return self.tree.left_child

    @property
    def right_child(self) -> np.ndarray:
        return self.tree.right_child

    def __repr__(self) -> str:
        p = self.p_min
        ps = "None" if p is None else f"{p:.3g}"
        return (f"Partition(n_cells={self.n_cells}, n_features={self.n_features}, "
                f"depth={self.depth}, p_min={ps}, seed={self.seed})")

    # -- assignment ---------------------------------------------------------------------------
    def assign(self, X, method: str = "tree", backend: str | None = None,
               check_finite: bool = True):
        """Cell label (int64) of every row of ``X`` (n, d).

        Parameters
        ----------
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
            X = import_cupy().asarray(X)
            _check_shape(X.shape)
            _float_dtype(X.dtype)
        else:
            X = _host_array(X)
        self._check_features(X.shape[1])
        name = "tree_descend" if method == "tree" else "nearest_centroid"
        return kernel(name, backend)(X, self.tree, check_finite)

    __call__ = assign

    def _check_features(self, d):
        if d != self.n_features:
            raise ValueError(
                f"X has {d} features but the partition was fitted on {self.n_features}"
            )

    # -- storage ------------------------------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """The tree as an :class:`xarray.Dataset` (plain arrays + attrs; NetCDF-ready)."""
        enc = "c >= 0: internal node c; c < 0: cell -1 - c"
        t = self.tree
        ds = xr.Dataset(
            {
                "left_centroid": (("node", "feature"), t.left_centroid,
                                  {"long_name": "centroid of the left child of each internal node"}),
                "right_centroid": (("node", "feature"), t.right_centroid,
                                   {"long_name": "centroid of the right child of each internal node"}),
                "left_child": ("node", t.left_child, {"long_name": "left child", "encoding_rule": enc}),
                "right_child": ("node", t.right_child, {"long_name": "right child", "encoding_rule": enc}),
                "cell_centroid": (("cell", "feature"), t.cell_centroid,
                                  {"long_name": "mean of the tree-building points of each cell"}),
                "cell_count": ("cell", self.counts,
                               {"long_name": "tree-building points in each cell"}),
                "cell_depth": ("cell", self.cell_depth,
                               {"long_name": "depth of each cell (root = 0)"}),
            },
            attrs={**provenance(), **self.attrs, "model": _MODEL_NAME,
                   "n_cells": self.n_cells, "n_features": self.n_features, "depth": self.depth},
        )
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "Partition":
        """Rebuild a :class:`Partition` from :meth:`to_dataset` output (e.g. read from NetCDF)."""
        model = ds.attrs.get("model", _MODEL_NAME)
        if model != _MODEL_NAME:
            raise ValueError(f"dataset holds a {model!r}, not a {_MODEL_NAME!r}")
        missing = [v for v in _TREE_VARS if v not in ds]
        if missing:
            raise ValueError(f"dataset lacks the partition variables {missing}")
        d = ds.sizes.get("feature", 0)
        arrays = [np.asarray(ds[name].values) for name in _TREE_VARS]
        for i in (0, 1, 4):
            arrays[i] = arrays[i].reshape(-1, d)
        skip = ("n_cells", "n_features", "depth", "xlangevin_object", "format_version",
                "xlangevin_groups")
        attrs = {k: _plain(v) for k, v in ds.attrs.items() if k not in skip}
        return cls(*arrays, attrs=attrs)

    def to_groups(self) -> dict:
        return {"": self.to_dataset()}

    @classmethod
    def from_groups(cls, groups: dict) -> "Partition":
        return cls.from_dataset(groups[""])


def _plain(v):
    """NetCDF attrs come back as numpy scalars; store plain Python values."""
    if isinstance(v, np.generic):
        return v.item()
    return v
