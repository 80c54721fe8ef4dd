"""State-space partition (METHODS.md §1): bisecting k-means tree, assignment backends, storage."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import xarray as xr

from xlangevin.backends.assign import descend_single, nearest_reference
from xlangevin.backends import resolve_backend
from xlangevin.partition import BisectingPartition, Partition
from xlangevin.testing import requires_cupy


def gaussian(n, d, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.fixture(scope="module")
def fitted():
    """A 4-D partition with ~700 cells and the data it was built on."""
    X = gaussian(100_000, 4, seed=1)
    return BisectingPartition(p_min=1e-3, seed=0).fit(X), X


# ------------------------------------------------------------------------------------------
# the tree: size, masses, reproduction of the build labels
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 4])
@pytest.mark.parametrize("p_min", [1e-3, 1e-2])
def test_number_of_cells_and_leaf_masses(d, p_min):
    n = int(100 / p_min)
    part = BisectingPartition(p_min=p_min, seed=3).fit(gaussian(n, d, seed=d))
    assert 0.5 / p_min <= part.n_cells <= 1.0 / p_min
    m = part.attrs["n_tree_samples"]
    assert m == n and part.counts.sum() == m
    # every leaf holds at most floor(2 p_min m) of the tree-building points (min-mass rule)
    assert part.counts.max() <= np.floor(2 * p_min * m)
    assert part.counts.min() >= 1
    assert part.n_nodes == part.n_cells - 1
    assert part.centroids.shape == (part.n_cells, d)
    assert part.p_min == p_min and part.depth == part.cell_depth.max()


@pytest.mark.parametrize("d, dtype", [(2, np.float64), (3, np.float32), (4, np.float64), (9, np.float32)])
def test_reassigning_build_points_reproduces_their_leaves(d, dtype):
    X = gaussian(30_000, d, seed=d, dtype=dtype)
    part = BisectingPartition(p_min=3e-3, seed=1).fit(X)
    Xb = X[part.build_index]
    assert part.build_labels.shape == (len(Xb),)
    assert np.array_equal(part.assign(Xb), part.build_labels)
    assert np.array_equal(part.assign(Xb, backend="numpy"), part.build_labels)
    # centroids are the means of the build points of each cell
    for k in (0, part.n_cells // 2, part.n_cells - 1):
        np.testing.assert_allclose(
            part.centroids[k], Xb[part.build_labels == k].astype(np.float64).mean(0), rtol=1e-12,
            atol=1e-12,
        )


def test_subsample_of_at_most_max_tree_samples():
    X = gaussian(50_000, 3, seed=2)
    part = BisectingPartition(p_min=1e-2, max_tree_samples=4_000, seed=0).fit(X)
    idx = part.build_index
    assert len(idx) == 4_000 == part.attrs["n_tree_samples"]
    assert np.all(np.diff(idx) > 0) and idx[-1] < len(X)
    assert np.array_equal(part.assign(X[idx]), part.build_labels)
    # default cap is ceil(100 / p_min)
    part2 = BisectingPartition(p_min=1e-2, seed=0).fit(X)
    assert part2.attrs["n_tree_samples"] == 10_000


def test_n_clusters_sets_p_min():
    X = gaussian(40_000, 2, seed=4)
    part = BisectingPartition(n_clusters=200, seed=0).fit(X)
    assert part.p_min == pytest.approx(0.7 / 200)
    assert 0.6 * 200 <= part.n_cells <= 1.4 * 200


def test_identical_points_make_one_cell_and_duplicates_stop_splitting():
    part = BisectingPartition(p_min=0.01, seed=0).fit(np.ones((5_000, 3)))
    assert part.n_cells == 1 and part.n_nodes == 0 and part.depth == 0
    assert np.all(part.assign(np.random.default_rng(0).random((10, 3))) == 0)
    # three distinct points, each repeated: a node of identical points cannot be split, so it
    # stays a leaf even though it holds more than 2 p_min of the points
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 7.0]]), 1_000, axis=0)
    part = BisectingPartition(p_min=0.01, seed=0).fit(X)
    assert part.n_cells == 3 and sorted(part.counts) == [1_000, 1_000, 1_000]
    assert len(np.unique(part.assign(X))) == 3


def test_p_min_half_gives_a_single_cell():
    part = BisectingPartition(p_min=0.5, seed=0).fit(gaussian(1_000, 2))
    assert part.n_cells == 1


# ------------------------------------------------------------------------------------------
# assignment backends against the numpy reference
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d, p_min", [(2, 2e-3), (4, 1e-3), (32, 4e-3)])
def test_numba_labels_equal_numpy_reference(d, p_min, dtype):
    part = BisectingPartition(p_min=p_min, seed=5).fit(gaussian(int(100 / p_min), d, seed=7))
    X = gaussian(100_000, d, seed=11, dtype=dtype)
    X[:20_000] *= 3.0  # far outside the data too
    ref = part.assign(X, backend="numpy")
    assert ref.dtype == np.int64 and ref.min() >= 0 and ref.max() < part.n_cells
    assert np.array_equal(part.assign(X), ref)  # default: numba lockstep
    out = np.empty(len(X), dtype=np.int64)
    descend_single(X, part.tree.records(), part.n_nodes, out)  # one point at a time
    assert np.array_equal(out, ref)
    # near-ties: points on the bisector of sibling centroids and the centroids themselves
    mid = ((part.left_centroid + part.right_centroid) / 2).astype(dtype)
    edge = np.concatenate([mid, part.centroids.astype(dtype)])
    assert np.array_equal(part.assign(edge), part.assign(edge, backend="numpy"))


def test_tree_descent_follows_the_nearer_child(fitted):
    part, _ = fitted
    x = gaussian(200, 4, seed=3)
    lab = part.assign(x)
    for i in range(len(x)):  # walk the public layout by hand
        node = 0
        while node >= 0:
            dl = np.sum((x[i] - part.left_centroid[node]) ** 2)
            dr = np.sum((x[i] - part.right_centroid[node]) ** 2)
            node = part.right_child[node] if dr < dl else part.left_child[node]
        assert -1 - node == lab[i]


def test_exact_ties_go_left():
    X = np.array([[-1.0, 0.0]] * 50 + [[1.0, 0.0]] * 50)
    part = BisectingPartition(p_min=0.1, seed=0).fit(X)
    assert part.n_cells == 2
    on_bisector = np.array([[0.0, 0.0], [0.0, 3.0], [0.0, -2.5]])
    left_leaf = -1 - part.left_child[0]
    for backend in ("numpy", "numba"):
        assert np.all(part.assign(on_bisector, backend=backend) == left_leaf)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_nearest_centroid_equals_brute_force(fitted, backend):
    part, _ = fitted
    X = gaussian(5_000, 4, seed=9)
    C = part.centroids
    brute = np.argmin(((X[:, None, :] - C[None, :, :]) ** 2).sum(-1), axis=1)
    assert np.array_equal(part.assign(X, method="nearest", backend=backend), brute)
    X32 = X.astype(np.float32)
    assert np.array_equal(
        part.assign(X32, method="nearest", backend=backend),
        nearest_reference(X32, C),
    )


def test_nearest_is_a_different_partition(fitted):
    part, X = fitted
    agree = np.mean(part.assign(X[:20_000]) == part.assign(X[:20_000], method="nearest"))
    assert 0.5 < agree < 1.0


def test_input_layouts_and_integer_input(fitted):
    part, X = fitted
    x = X[:3_000]
    ref = part.assign(x)
    assert np.array_equal(part.assign(np.asfortranarray(x)), ref)
    assert np.array_equal(part.assign(X[:6_000:2]), part.assign(np.ascontiguousarray(X[:6_000:2])))
    assert np.array_equal(part.assign(xr.DataArray(x, dims=("time", "feature"))), ref)
    assert np.array_equal(part(x), ref)
    xi = np.round(x * 3).astype(np.int32)
    assert np.array_equal(part.assign(xi), part.assign(xi.astype(np.float64), backend="numpy"))
    assert part.assign(np.empty((0, 4))).shape == (0,)


# ------------------------------------------------------------------------------------------
# determinism
# ------------------------------------------------------------------------------------------
def _same_tree(a: Partition, b: Partition) -> bool:
    return a.to_dataset().drop_attrs().identical(b.to_dataset().drop_attrs())


def test_same_seed_same_tree_different_seed_different_tree():
    X = gaussian(40_000, 3, seed=8)
    a = BisectingPartition(p_min=2e-3, seed=42).fit(X)
    b = BisectingPartition(p_min=2e-3, seed=42).fit(X)
    c = BisectingPartition(p_min=2e-3, seed=43).fit(X)
    assert _same_tree(a, b) and np.array_equal(a.build_labels, b.build_labels)
    assert not _same_tree(a, c)
    # with a subsample, the seed also picks the rows
    d1 = BisectingPartition(p_min=2e-3, max_tree_samples=10_000, seed=1).fit(X)
    d2 = BisectingPartition(p_min=2e-3, max_tree_samples=10_000, seed=2).fit(X)
    assert not np.array_equal(d1.build_index, d2.build_index)


def test_tree_does_not_depend_on_the_number_of_threads():
    X = gaussian(60_000, 4, seed=12)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = BisectingPartition(p_min=2e-3, seed=0).fit(X)
        lab1 = one.assign(X)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = BisectingPartition(p_min=2e-3, seed=0).fit(X)
    finally:
        numba.set_num_threads(before)
    assert _same_tree(one, many)
    assert np.array_equal(lab1, many.assign(X))


def test_fit_does_not_modify_its_input():
    X = gaussian(20_000, 2, seed=3)
    X0 = X.copy()
    BisectingPartition(p_min=5e-3, seed=0).fit(X)
    assert np.array_equal(X, X0)


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"p_min": 0.0}, "p_min must be a number in"),
        ({"p_min": 0.6}, "p_min must be a number in"),
        ({"p_min": "0.1"}, "p_min must be"),
        ({"p_min": True}, "p_min must be"),
        ({"n_clusters": 1}, "n_clusters must be an integer >= 2"),
        ({"n_clusters": 10.5}, "n_clusters must be an integer"),
        ({"p_min": 0.01, "n_clusters": 50}, "not both"),
        ({}, "give p_min"),
        ({"p_min": 0.01, "seed": -1}, "seed must be"),
        ({"p_min": 0.01, "max_iter": 0}, "max_iter"),
        ({"p_min": 0.01, "max_tree_samples": 5}, "max_tree_samples"),
        ({"p_min": 0.01, "tol": -1.0}, "tol"),
    ],
)
def test_bad_parameters_raise_in_fit(kwargs, match):
    est = BisectingPartition(**kwargs)  # the constructor only stores
    with pytest.raises(ValueError, match=match):
        est.fit(gaussian(10_000, 2))


def test_p_min_too_small_for_the_data_says_what_to_change():
    with pytest.raises(ValueError, match=r"p_min=0.001 is too small for n=5000 samples") as err:
        BisectingPartition(p_min=1e-3, seed=0).fit(gaussian(5_000, 2))
    msg = str(err.value)
    assert "larger p_min" in msg and "10000 samples" in msg
    with pytest.raises(ValueError, match="max_tree_samples=2000"):
        BisectingPartition(p_min=1e-3, max_tree_samples=2_000).fit(gaussian(50_000, 2))


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(100), "2-D array"),
        (np.zeros((10, 10, 2)), "2-D array"),
        (np.zeros((100, 2), dtype=complex), "real numbers"),
        (np.array([["a", "b"]] * 100), "real numbers"),
    ],
)
def test_bad_arrays_raise(X, match):
    with pytest.raises(ValueError, match=match):
        BisectingPartition(p_min=0.2).fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(fitted, bad):
    X = gaussian(10_000, 2)
    X[123, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        BisectingPartition(p_min=0.01).fit(X)
    part, _ = fitted
    x = gaussian(100, 4)
    x[7, 0] = bad
    for backend in ("numba", "numpy"):
        with pytest.raises(ValueError, match="NaN or inf"):
            part.assign(x, backend=backend)


def test_assign_argument_errors(fitted):
    part, X = fitted
    with pytest.raises(ValueError, match="3 features but the partition was fitted on 4"):
        part.assign(X[:10, :3])
    with pytest.raises(ValueError, match="method must be"):
        part.assign(X[:10], method="kdtree")
    with pytest.raises(ValueError, match="backend must be one of"):
        part.assign(X[:10], backend="jax")


def test_resolve_backend():
    x = np.zeros((3, 2))
    assert resolve_backend(x) == "numba"
    assert resolve_backend(x, "numpy") == "numpy"
    assert resolve_backend(x, "NUMBA") == "numba"


# ------------------------------------------------------------------------------------------
# storage
# ------------------------------------------------------------------------------------------
def test_netcdf_round_trip_gives_identical_labels(fitted, tmp_path):
    part, X = fitted
    path = tmp_path / "partition.nc"
    part.to_netcdf(path)
    back = Partition.open(path)
    assert back.n_cells == part.n_cells and back.depth == part.depth
    assert back.p_min == part.p_min and back.seed == 0
    assert back.attrs["xlangevin_version"] == part.attrs["xlangevin_version"]
    for name in ("left_centroid", "right_centroid", "left_child", "right_child", "centroids", "counts"):
        assert np.array_equal(getattr(back, name), getattr(part, name))
    x = gaussian(50_000, 4, seed=5)
    assert np.array_equal(back.assign(x), part.assign(x))
    assert np.array_equal(back.assign(x, method="nearest"), part.assign(x, method="nearest"))
    assert back.build_labels is None  # the build sample is not stored
    ds = xr.open_dataset(path)
    try:
        assert ds.attrs["model"] == "xlangevin.Partition" and ds.attrs["n_cells"] == part.n_cells
        assert set(ds.dims) == {"node", "cell", "feature"}
    finally:
        ds.close()


def test_single_cell_partition_round_trip(tmp_path):
    part = BisectingPartition(p_min=0.5, seed=None).fit(gaussian(500, 3))
    part.to_netcdf(tmp_path / "one.nc")
    back = Partition.open(tmp_path / "one.nc")
    assert back.n_cells == 1 and back.seed is None
    assert np.all(back.assign(gaussian(20, 3)) == 0)


def test_from_dataset_rejects_corrupt_trees(fitted):
    part, _ = fitted
    ds = part.to_dataset()
    bad = ds.copy(deep=True)
    bad["left_child"][5] = 2  # points back up the tree: a cycle
    with pytest.raises(ValueError, match="corrupt tree"):
        Partition.from_dataset(bad)
    bad = ds.copy(deep=True)
    bad["right_child"][0] = bad["left_child"][0].values  # a node with two parents, a lost one
    with pytest.raises(ValueError, match="corrupt tree"):
        Partition.from_dataset(bad)
    with pytest.raises(ValueError, match="lacks the partition variables"):
        Partition.from_dataset(ds.drop_vars("cell_depth"))
    other = ds.copy()
    other.attrs["model"] = "xlangevin.ScoreModel"
    with pytest.raises(ValueError, match="not a 'xlangevin.Partition'"):
        Partition.from_dataset(other)


def test_model_is_immutable_and_readable(fitted):
    part, _ = fitted
    with pytest.raises(ValueError):
        part.centroids[0, 0] = 1.0
    r = repr(part)
    assert r.startswith("Partition(n_cells=") and "p_min=0.001" in r and "seed=0" in r
    assert repr(BisectingPartition(p_min=0.01, seed=3)).startswith("BisectingPartition(p_min=0.01")


# ------------------------------------------------------------------------------------------
# GPU
# ------------------------------------------------------------------------------------------
@requires_cupy
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d, p_min", [(2, 2e-3), (4, 1e-3), (32, 4e-3)])
def test_cupy_labels_equal_numpy_reference(d, p_min, dtype):
    import cupy as cp

    part = BisectingPartition(p_min=p_min, seed=5).fit(gaussian(int(100 / p_min), d, seed=7))
    X = gaussian(100_000, d, seed=11, dtype=dtype)
    X[:20_000] *= 3.0
    Xd = cp.asarray(X)
    assert resolve_backend(Xd) == "cupy"
    lab = part.assign(Xd)  # cupy in -> cupy kernel, cupy out
    assert isinstance(lab, cp.ndarray) and lab.dtype == cp.int64
    assert np.array_equal(cp.asnumpy(lab), part.assign(X, backend="numpy"))
    # numpy in, explicit cupy backend
    assert np.array_equal(cp.asnumpy(part.assign(X, backend="cupy")), part.assign(X))
    near = part.assign(Xd[:5_000], method="nearest")
    assert np.array_equal(cp.asnumpy(near), part.assign(X[:5_000], method="nearest", backend="numpy"))
    mid = ((part.left_centroid + part.right_centroid) / 2).astype(dtype)
    assert np.array_equal(cp.asnumpy(part.assign(cp.asarray(mid))), part.assign(mid, backend="numpy"))
    bad = Xd[:10].copy()
    bad[3, 0] = cp.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        part.assign(bad)


@requires_cupy
def test_fit_on_cupy_input_matches_numpy_input():
    import cupy as cp

    X = gaussian(30_000, 3, seed=2)
    a = BisectingPartition(p_min=3e-3, seed=0).fit(X)
    b = BisectingPartition(p_min=3e-3, seed=0).fit(cp.asarray(X))
    assert _same_tree(a, b)
