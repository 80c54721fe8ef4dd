"""CUDA kernels (cupy ``RawKernel``), bit-for-bit equal to the numpy references.

The arithmetic follows the convention of :mod:`.assign` (float64, four lanes, right child
iff ``dist_right < dist_left``). CUDA compilers contract ``a + t * t`` into a fused multiply-add by
default, which would change the rounding; the kernels therefore spell every operation with the
round-to-nearest intrinsics ``__dsub_rn`` / ``__dmul_rn`` / ``__dadd_rn``, which are never
contracted.

cupy is imported lazily (this module is only imported when the cupy backend is used).
"""

from __future__ import annotations

import numpy as np

from . import import_cupy, register

__all__ = ["tree_descend", "nearest_centroid", "accumulate_cells"]

_THREADS = 256

_SRC = r"""
extern "C" {

/* |x - c|^2 in float64: four lanes (j mod 4), lanes summed as (l0 + l1) + (l2 + l3); the _rn
   intrinsics keep the compiler from fusing multiply and add. */
__device__ __forceinline__ double sqdist_T(const T* __restrict__ x, const double* __restrict__ c,
                                           const int d) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, t;
    int j = 0;
    for (; j + 4 <= d; j += 4) {
        t = __dsub_rn((double)x[j], c[j]);         a0 = __dadd_rn(a0, __dmul_rn(t, t));
        t = __dsub_rn((double)x[j + 1], c[j + 1]); a1 = __dadd_rn(a1, __dmul_rn(t, t));
        t = __dsub_rn((double)x[j + 2], c[j + 2]); a2 = __dadd_rn(a2, __dmul_rn(t, t));
        t = __dsub_rn((double)x[j + 3], c[j + 3]); a3 = __dadd_rn(a3, __dmul_rn(t, t));
    }
    if (j < d)     { t = __dsub_rn((double)x[j], c[j]);         a0 = __dadd_rn(a0, __dmul_rn(t, t)); }
    if (j + 1 < d) { t = __dsub_rn((double)x[j + 1], c[j + 1]); a1 = __dadd_rn(a1, __dmul_rn(t, t)); }
    if (j + 2 < d) { t = __dsub_rn((double)x[j + 2], c[j + 2]); a2 = __dadd_rn(a2, __dmul_rn(t, t)); }
    return __dadd_rn(__dadd_rn(a0, a1), __dadd_rn(a2, a3));
}

/* packed tree: node k has centres centers[k, 0:2, :] and children children[k, 0:2]; leaves are
   the nodes >= n_int; label = node - n_int. Right child iff d_right < d_left (ties -> left). */
__global__ void tree_descend_T(const T* __restrict__ X, const double* __restrict__ centers,
                               const long long* __restrict__ children, const long long n_int,
                               const long long n, const int d, long long* __restrict__ out) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const T* x = X + i * (long long)d;
    long long nd = 0;
    while (nd < n_int) {
        const double* ca = centers + nd * 2LL * (long long)d;
        double da = sqdist_T(x, ca, d);
        double db = sqdist_T(x, ca + d, d);
        nd = children[2 * nd + (db < da ? 1 : 0)];
    }
    out[i] = nd - n_int;
}

/* nearest row of C (first index on ties) */
__global__ void nearest_centroid_T(const T* __restrict__ X, const double* __restrict__ C,
                                   const long long n, const long long k, const int d,
                                   long long* __restrict__ out) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const T* x = X + i * (long long)d;
    double best = __longlong_as_double(0x7ff0000000000000LL);  /* +inf */
    long long bi = 0;
    for (long long c = 0; c < k; ++c) {
        double dist = sqdist_T(x, C + c * (long long)d, d);
        if (dist < best) { best = dist; bi = c; }
    }
    out[i] = bi;
}

}  /* extern "C" */
"""

_modules: dict = {}


def _module(dtype):
    cp = import_cupy()
    key = np.dtype(dtype).name
    if key not in _modules:
        ctype = {"float32": "float", "float64": "double"}[key]
        src = _SRC.replace("_T(", f"_{key}(").replace("const T*", f"const {ctype}*")
        _modules[key] = cp.RawModule(code=src, options=("--std=c++14",))
    return _modules[key]


def _as_device_2d(X):
    cp = import_cupy()
    X = cp.asarray(X)
    if X.dtype not in (cp.float32, cp.float64):
        X = X.astype(cp.float64)
    return cp.ascontiguousarray(X)


def tree_descend(X, centers, children, n_int):
    """Leaf labels (cupy int64) by descending the packed tree (see :func:`.assign.pack_tree`).

    ``centers`` (float64, (n_nodes + n_cells, 2, d)) and ``children`` (int64) may be numpy or cupy.
    """
    cp = import_cupy()
    X = _as_device_2d(X)
    n, d = X.shape
    out = cp.empty(n, dtype=cp.int64)
    if n == 0:
        return out
    centers = cp.ascontiguousarray(cp.asarray(centers, dtype=cp.float64))
    children = cp.ascontiguousarray(cp.asarray(children, dtype=cp.int64))
    kern = _module(X.dtype).get_function(f"tree_descend_{np.dtype(X.dtype).name}")
    grid = ((n + _THREADS - 1) // _THREADS,)
    kern(grid, (_THREADS,), (X, centers, children, np.int64(n_int), np.int64(n), np.int32(d), out))
    return out


def nearest_centroid(X, C):
    """Index (cupy int64) of the nearest row of ``C`` (first on ties), brute force."""
    cp = import_cupy()
    X = _as_device_2d(X)
    n, d = X.shape
    out = cp.empty(n, dtype=cp.int64)
    if n == 0:
        return out
    C = cp.ascontiguousarray(cp.asarray(C, dtype=cp.float64))
    kern = _module(X.dtype).get_function(f"nearest_centroid_{np.dtype(X.dtype).name}")
    grid = ((n + _THREADS - 1) // _THREADS,)
    kern(grid, (_THREADS,), (X, C, np.int64(n), np.int64(C.shape[0]), np.int32(d), out))
    return out


@register("accumulate_cells", "cupy")
def accumulate_cells(labels, z, x, n_cells):
    """Per-cell ``(count, sum z, sum x, sum |z|^2)`` on the GPU (cupy arrays in, numpy out)."""
    cp = import_cupy()
    labels = cp.asarray(labels)
    z = cp.asarray(z, dtype=cp.float64)
    x = cp.asarray(x, dtype=cp.float64)
    d = z.shape[1]
    count = cp.bincount(labels, minlength=n_cells).astype(cp.int64)
    sum_z = cp.zeros((n_cells, d))
    sum_x = cp.zeros((n_cells, d))
    cp.add.at(sum_z, labels, z)
    cp.add.at(sum_x, labels, x)
    sum_z2 = cp.bincount(labels, weights=cp.sum(z * z, axis=1), minlength=n_cells)
    return tuple(cp.asnumpy(a) for a in (count, sum_z, sum_x, sum_z2))


# --------------------------------------------------------------------------------------------
# the registered assignment kernels: (X, tree, check_finite) -> cupy labels
# --------------------------------------------------------------------------------------------
def _checked(X, tree, check_finite):
    cp = import_cupy()
    X = cp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features); got shape {X.shape}")
    if X.dtype.kind not in "fiu":
        raise ValueError(f"X must hold real numbers (float or int); got dtype {X.dtype}")
    if X.shape[1] != tree.cell_centroid.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the partition was fitted on "
                         f"{tree.cell_centroid.shape[1]}")
    if check_finite and X.size and not bool(cp.isfinite(X).all()):
        raise ValueError("X contains NaN or inf values; drop or fill them first")
    return cp, X


@register("tree_descend", "cupy")
def _tree_descend_cupy(X, tree, check_finite=True):
    cp, X = _checked(X, tree, check_finite)
    dev = cp.cuda.runtime.getDevice()
    centers, children = tree.cached(("cupy", dev, "tree"), lambda: tuple(
        cp.asarray(a) for a in tree.packed()))
    return tree_descend(X, centers, children, tree.n_nodes)


@register("nearest_centroid", "cupy")
def _nearest_centroid_cupy(X, tree, check_finite=True):
    cp, X = _checked(X, tree, check_finite)
    dev = cp.cuda.runtime.getDevice()
    C = tree.cached(("cupy", dev, "centroids"), lambda: cp.asarray(tree.cell_centroid))
    return nearest_centroid(X, C)
