"""Every registered kernel against its numpy reference (the one dispatch: ``kernel(name, backend)``).

``CHECKS`` names one check per kernel; a kernel registered without a check fails
``test_every_kernel_has_a_check``, so new kernels join this suite. Bit-exact agreement is asked
where the kernels promise it (labels, counts, the fixed-order tree distances); sums whose order
differs across threads are compared to 1e-12 relative.
"""

import math

import numpy as np
import pytest
import torch

from xlangevin.backends import kernel, registry
from xlangevin.backends.assign import TreeArrays
from xlangevin.backends.transitions import valid_segments
from xlangevin.testing import requires_cupy

RNG = np.random.default_rng(2024)


# ----------------------------------------------------------------------------------------------
# fixtures: a fitted tree, labelled sequences, a sparse count matrix
# ----------------------------------------------------------------------------------------------
def _tree(d=5, n=20_000, threshold=200, seed=0):
    W = np.random.default_rng(seed).normal(size=(n, d))
    W[: n // 2] += 3.0  # two blobs: an unbalanced tree
    t = kernel("build_tree", "numba")(W, threshold, np.random.default_rng(seed), 2, 300, 1e-4)
    tree = TreeArrays(t["left_centroid"], t["right_centroid"], t["left_child"],
                      t["right_child"], t["cell_centroid"], int(t["cell_depth"].max()))
    return W, t, tree


@pytest.fixture(scope="module")
def built():
    return _tree()


def _labels(n=50_000, n_states=37, seed=1):
    rng = np.random.default_rng(seed)
    labels = np.empty(n, np.int64)  # a sticky chain: many stays, some jumps
    labels[0] = 0
    jumps = rng.random(n) < 0.3
    targets = rng.integers(0, n_states, n)
    for t in range(1, n):
        labels[t] = targets[t] if jumps[t] else labels[t - 1]
    bounds = np.array([0, 7, 20_000, 20_003, n], np.int64)
    return labels, bounds, n_states


# ----------------------------------------------------------------------------------------------
# the checks, one per kernel name
# ----------------------------------------------------------------------------------------------
def check_tree_descend(backend, built):
    W, t, tree = built
    X = np.vstack([W[:5000], RNG.normal(size=(3000, W.shape[1])) * 3])
    ref = kernel("tree_descend", "numpy")(X, tree)
    np.testing.assert_array_equal(_host(kernel("tree_descend", backend)(_dev(X, backend), tree)),
                                  ref)


def check_nearest_centroid(backend, built):
    W, t, tree = built
    X = RNG.normal(size=(4000, W.shape[1])) * 2
    ref = kernel("nearest_centroid", "numpy")(X, tree)
    got = kernel("nearest_centroid", backend)(_dev(X, backend), tree)
    np.testing.assert_array_equal(_host(got), ref)


def check_build_tree(backend, built):
    """No reference builder: the oracle is the reference descent, which must send every build
    point to the leaf the build put it in, and the cells' stored means and counts."""
    W, t, tree = built
    labels = kernel("tree_descend", "numpy")(W, tree)
    np.testing.assert_array_equal(labels, t["labels"])
    np.testing.assert_array_equal(np.bincount(labels, minlength=tree.n_cells), t["cell_count"])
    means = np.array([W[labels == k].mean(axis=0) for k in range(tree.n_cells)])
    np.testing.assert_allclose(t["cell_centroid"], means, rtol=1e-12, atol=1e-12)
    assert t["cell_count"].max() <= 200 and tree.n_cells == tree.n_nodes + 1


def check_accumulate_cells(backend, built):
    labels = RNG.integers(0, 37, 100_000)
    z, x = RNG.normal(size=(100_000, 3)), RNG.normal(size=(100_000, 3))
    ref = kernel("accumulate_cells", "numpy")(labels, z, x, 40)
    got = kernel("accumulate_cells", backend)(_dev(labels, backend), _dev(z, backend),
                                              _dev(x, backend), 40)
    np.testing.assert_array_equal(_host(got[0]), ref[0])
    for r, g in zip(ref[1:], got[1:]):
        np.testing.assert_allclose(_host(g), r, rtol=1e-12, atol=1e-9)


def check_transition_counts(backend, built):
    labels, bounds, ns = _labels()
    for lag in (1, 3):
        seg = valid_segments(bounds, lag)
        ref = kernel("transition_counts", "numpy")(labels, *seg, lag, ns, "bincount")
        alt = kernel("transition_counts", "numpy")(labels, *seg, lag, ns, "sort")
        methods = ("dense", "bucket", "auto") if backend == "numba" else ("auto",)
        for method in methods:
            got = kernel("transition_counts", backend)(labels, *seg, lag, ns, method)
            for r, a, g in zip(ref, alt, got):
                np.testing.assert_array_equal(g, r)
                np.testing.assert_array_equal(a, r)


def check_label_range(backend, built):
    labels = RNG.integers(-5, 1000, 300_001)
    assert tuple(kernel("label_range", backend)(labels)) == (labels.min(), labels.max())
    assert tuple(kernel("label_range", "numpy")(labels)) == (labels.min(), labels.max())


def check_rate_matrix(backend, built):
    labels, bounds, ns = _labels()
    indptr, indices, data = kernel("transition_counts", "numpy")(
        labels, *valid_segments(bounds, 1), 1, ns, "auto")
    departures = np.bincount(indices, weights=data, minlength=ns)
    stays = np.array([data[indptr[i]:indptr[i + 1]][indices[indptr[i]:indptr[i + 1]] == i].sum()
                      for i in range(ns)])
    w = RNG.uniform(0.5, 2.0, ns)
    leaves = departures - stays
    ref = kernel("rate_matrix", "numpy")(indptr, indices, data, w, leaves, ns)
    got = kernel("rate_matrix", backend)(indptr, indices, data, w, leaves, ns)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-14, atol=0)


def check_csr_row_lse(backend, built):
    n = 500
    nnz = RNG.integers(1, 30, n)
    indptr = np.concatenate([[0], np.cumsum(nnz)]).astype(np.int64)
    indices = RNG.integers(0, n, indptr[-1]).astype(np.int64)
    logdata = RNG.normal(scale=50.0, size=indptr[-1])  # wide range: the max shift matters
    u = RNG.normal(size=n)
    ref = kernel("csr_row_lse", "numpy")(indptr, indices, logdata, u)
    got = kernel("csr_row_lse", backend)(indptr, indices, logdata, u)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-12)
    row = slice(indptr[3], indptr[4])  # and one row by hand
    a = logdata[row] + u[indices[row]]
    assert math.isclose(ref[3], a.max() + math.log(np.exp(a - a.max()).sum()), rel_tol=1e-13)


def check_euler_maruyama(backend, built):
    """One chunk of steps of an MLP drift: the numba stepper (drift folded into the network)
    against the reference loop (torch network, then ``Phi``), same noise and resets."""
    from xlangevin.data import feature_data
    from xlangevin.dynamics.drift import DriftField, as_score
    from xlangevin.score import MLP, NoiseToScore, ScoreModel

    d, m, n = 3, 64, 40
    torch.manual_seed(0)
    space = feature_data(np.random.default_rng(0).normal(size=(500, d))).space
    score = ScoreModel(NoiseToScore(MLP(d, (16, 8)).double(), 0.3), space, 0.3, "test")
    A = RNG.normal(size=(d, d)) * 0.1
    Phi = np.eye(d) + A - A.T
    Sig = np.linalg.cholesky(np.eye(d))
    results = {}
    for name in ("numpy", backend):
        stepper = kernel("euler_maruyama", name)(DriftField(as_score(score, space), Phi, None,
                                                            np.float64), Sig)
        x = np.random.default_rng(1).normal(size=(m, d))
        noise = np.random.default_rng(2).normal(size=(n, m, d))
        samples = np.random.default_rng(3).normal(size=(10, d))
        pool = np.zeros((m, 2), np.int64)
        resets, frozen = np.zeros(m, np.int64), np.full(m, -1, np.int64)
        out = np.empty((n // 4, m, d))
        try:
            stepper(x, noise, 0.01, 10.0, 0, samples, pool, resets, frozen, out, 0, 4)
        finally:
            stepper.close()
        results[name] = (x, out, resets)
    for r, g in zip(results["numpy"], results[backend]):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


CHECKS = {
    "tree_descend": check_tree_descend,
    "nearest_centroid": check_nearest_centroid,
    "build_tree": check_build_tree,
    "accumulate_cells": check_accumulate_cells,
    "transition_counts": check_transition_counts,
    "label_range": check_label_range,
    "rate_matrix": check_rate_matrix,
    "csr_row_lse": check_csr_row_lse,
    "euler_maruyama": check_euler_maruyama,
}


def _dev(a, backend):
    if backend != "cupy":
        return a
    import cupy as cp

    return cp.asarray(a)


def _host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


# ----------------------------------------------------------------------------------------------
# the tests
# ----------------------------------------------------------------------------------------------
def test_every_kernel_has_a_check():
    names = {name for name, _ in registry(("numpy", "numba"))}
    assert names == set(CHECKS), f"kernels without a check: {sorted(names - set(CHECKS))}"


def test_every_fast_kernel_has_a_reference():
    entries = registry(("numpy", "numba"))
    no_reference = {n for n, b in entries if b == "numba"} - {n for n, b in entries
                                                             if b == "numpy"}
    assert no_reference == {"build_tree"}  # its oracle is the reference descent


@pytest.mark.parametrize("name", sorted(n for n, b in registry(("numba",))))
def test_numba_kernel_matches_reference(name, built):
    CHECKS[name]("numba", built)


@requires_cupy
@pytest.mark.parametrize("name", ["tree_descend", "nearest_centroid", "accumulate_cells"])
def test_cupy_kernel_matches_reference(name, built):
    CHECKS[name]("cupy", built)


def test_unknown_kernel_or_backend_says_what_exists():
    with pytest.raises(ValueError, match="has no 'numpy' implementation"):
        kernel("build_tree", "numpy")
    with pytest.raises(ValueError, match="backend must be one of"):
        kernel("tree_descend", "fortran")
