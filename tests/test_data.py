"""Data layer: exact round trips, unit maps and the errors for bad input."""

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xlangevin
from xlangevin.data import DataError, FeatureSpace


def labeled(n_time=50, n_k=3, n_j=2, seed=0, members=None):
    rng = np.random.default_rng(seed)
    lead = ((members,) if members else ()) + (n_time,)
    lead_dims = (("member",) if members else ()) + ("time",)
    ds = xr.Dataset(
        {
            "a": (lead_dims + ("k",), rng.normal(3.0, 2.0, lead + (n_k,)), {"units": "m"}),
            "b": (lead_dims + ("j", "k"), rng.normal(-1.0, 0.5, lead + (n_j, n_k)),
                  {"units": "K", "long_name": "bee"}),
            "c": (lead_dims, rng.normal(0, 1, lead)),
            "static": (("k",), np.arange(n_k)),
        },
        coords={"time": ("time", 0.5 * np.arange(n_time), {"units": "days"}),
                "k": [10, 20, 30][:n_k], "j": ["p", "q"][:n_j]},
        attrs={"title": "test data"},
    )
    if members:
        ds = ds.assign_coords(member=np.arange(members))
    return ds


def test_default_variables_and_layout():
    ds = labeled()
    fs = FeatureSpace.fit(ds)
    assert fs.variables == ["a", "b", "c"]  # "static" lacks the sample dim
    assert fs.n_features == 3 + 6 + 1
    X = fs.transform(ds)
    assert X.shape == (50, 10)
    # standardized: zero mean, unit (population) std per feature
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(0), 1, rtol=1e-12)
    # the feature order is each variable's dims in their own order, C-flattened
    np.testing.assert_allclose(fs.to_physical(X)[:, 3:9],
                               ds.b.transpose("time", "j", "k").values.reshape(50, 6))
    assert fs.feature_labels()[3] == "b[j=p, k=10]"


def test_round_trip_restores_labels_exactly():
    ds = labeled()
    fs = FeatureSpace.fit(ds, variables=["b", "a"])
    back = fs.inverse_transform(fs.transform(ds), coords={"time": ds.time})
    for v in ("a", "b"):
        xr.testing.assert_allclose(back[v], ds[v].transpose(*back[v].dims), rtol=1e-13, atol=1e-14)
        assert back[v].attrs == ds[v].attrs
    assert back.attrs == ds.attrs
    assert back.time.attrs["units"] == "days"
    assert list(back.j.values) == ["p", "q"]


def test_stacking_without_standardization_is_bit_exact():
    ds = labeled()
    fs = FeatureSpace.fit(ds, standardize=False)
    back = fs.inverse_transform(fs.transform(ds), coords={"time": ds.time})
    for v in fs.variables:
        xr.testing.assert_identical(back[v], ds[v].transpose(*back[v].dims))


def test_dataarray_in_dataarray_out():
    ds = labeled()
    fs = FeatureSpace.fit(ds.b)
    X = fs.transform(ds.b)
    out = fs.inverse_transform(X)
    assert isinstance(out, xr.DataArray) and out.name == "b"
    np.testing.assert_allclose(out.values, ds.b.values, rtol=1e-13, atol=1e-14)
    # default sample coordinate continues the fitted spacing from 0
    np.testing.assert_allclose(out.time.values, ds.time.values)


@settings(max_examples=25, deadline=None)
@given(n_time=st.integers(12, 40), n_k=st.integers(1, 3), n_j=st.integers(1, 2),
       seed=st.integers(0, 10_000), dtype=st.sampled_from([np.float64, np.float32]))
def test_round_trip_property(n_time, n_k, n_j, seed, dtype):
    ds = labeled(n_time, n_k, n_j, seed)
    fs = FeatureSpace.fit(ds, dtype=dtype)
    X = fs.transform(ds)
    assert X.dtype == dtype
    back = fs.inverse_transform(X, coords={"time": ds.time})
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for v in fs.variables:
        np.testing.assert_allclose(back[v].transpose(*ds[v].dims).values, ds[v].values,
                                   rtol=rtol, atol=rtol * 10)
    # standardize / unstandardize are exact inverses
    Y = np.random.default_rng(seed).normal(size=(7, fs.n_features))
    np.testing.assert_allclose(fs.to_standard(fs.to_physical(Y)), Y, rtol=1e-12, atol=1e-12)


def test_unit_maps_against_a_change_of_variables():
    """Score, Phi and Sigma maps follow from x = m + S x~ (METHODS.md §0)."""
    rng = np.random.default_rng(1)
    ds = labeled()
    fs = FeatureSpace.fit(ds)
    d = fs.n_features
    S = np.diag(fs.scale)
    # Gaussian in standardized units with precision P~: s~(x~) = -P~ x~
    A = rng.normal(size=(d, d))
    P_std = A @ A.T + d * np.eye(d)
    x = fs.to_physical(rng.normal(size=(5, d)))
    s_std = -(fs.to_standard(x) @ P_std.T)
    # the same density in physical units has precision S^-1 P~ S^-1 and mean m
    P_phys = np.linalg.inv(S) @ P_std @ np.linalg.inv(S)
    np.testing.assert_allclose(fs.score_to_physical(s_std), -(x - fs.mean) @ P_phys.T,
                               rtol=1e-10)
    np.testing.assert_allclose(fs.score_to_standard(fs.score_to_physical(s_std)), s_std)
    np.testing.assert_allclose(fs.jacobian_to_physical(-P_std), -P_phys, rtol=1e-12)
    # drift Phi s is a velocity: physical drift = S * (standardized drift)
    Phi = rng.normal(size=(d, d))
    np.testing.assert_allclose(fs.matrix_to_physical(Phi) @ fs.score_to_physical(s_std[0]),
                               fs.scale * (Phi @ s_std[0]), rtol=1e-10)
    np.testing.assert_allclose(fs.matrix_to_standard(fs.matrix_to_physical(Phi)), Phi)
    L = np.linalg.cholesky(P_std)
    Lp = fs.factor_to_physical(L)
    np.testing.assert_allclose(Lp @ Lp.T, fs.matrix_to_physical(L @ L.T), rtol=1e-12)
    np.testing.assert_allclose(fs.factor_to_standard(Lp), L)


def test_members_are_separate_sequences():
    ds = labeled(n_time=20, members=3)
    fs = FeatureSpace.fit(ds)
    assert fs.sequence_dim == "member"
    X = fs.transform(ds)
    assert X.shape == (60, fs.n_features)
    np.testing.assert_array_equal(fs.sequence_bounds(ds), [0, 20, 40, 60])
    # member-major order
    np.testing.assert_allclose(fs.to_physical(X)[20:40, :3], ds.a.isel(member=1).values)
    back = fs.inverse_transform(X.reshape(3, 20, -1))
    assert back.a.dims == ("member", "time", "k")
    np.testing.assert_allclose(back.a.values, ds.a.values, rtol=1e-13, atol=1e-14)


def test_time_gaps_split_sequences():
    ds = labeled(n_time=30)
    t = np.concatenate([np.arange(10), 15 + np.arange(12), 40 + np.arange(8)]) * 0.5
    ds = ds.assign_coords(time=t)
    fs = FeatureSpace.fit(ds, require_regular=True)
    assert fs.dt == 0.5
    np.testing.assert_array_equal(fs.sequence_bounds(ds), [0, 10, 22, 30])


def test_monthly_datetime_is_regular():
    time = pd.date_range("1950-01-01", periods=48, freq="MS")
    da = xr.DataArray(np.random.default_rng(0).normal(size=48), dims="time",
                      coords={"time": time}, name="nino34")
    fs = FeatureSpace.fit(da, require_regular=True)
    assert fs.time["freq"] == "MS" and fs.dt == 1.0
    np.testing.assert_array_equal(fs.sequence_bounds(da), [0, 48])
    t = fs.sample_coordinate(3, start="2000-01-01")
    assert pd.Timestamp(t[2]) == pd.Timestamp("2000-03-01")


def test_dask_input_stays_lazy_and_matches(raise_if_dask_computes):
    ds = labeled(n_time=200)
    lazy = ds.chunk({"time": 37})
    fs_eager = FeatureSpace.fit(ds)
    # fit streams: one reduction for the NaN check of each variable and one for the moments
    with raise_if_dask_computes(6):
        fs_lazy = FeatureSpace.fit(lazy)
        X = fs_lazy.transform(lazy)
    np.testing.assert_allclose(fs_lazy.mean, fs_eager.mean, rtol=1e-12)
    np.testing.assert_allclose(fs_lazy.scale, fs_eager.scale, rtol=1e-12)
    assert isinstance(X, dsa.Array)
    np.testing.assert_allclose(X.compute(), fs_eager.transform(ds), rtol=1e-12, atol=1e-14)


def test_serialization_round_trip(tmp_path):
    ds = labeled()
    fs = FeatureSpace.fit(ds)
    path = tmp_path / "fs.nc"
    fs.to_dataset().to_netcdf(path)
    with xr.open_dataset(path) as saved:
        fs2 = FeatureSpace.from_dataset(saved.load())
    np.testing.assert_array_equal(fs2.mean, fs.mean)
    np.testing.assert_array_equal(fs2.scale, fs.scale)
    assert fs2.feature_labels() == fs.feature_labels()
    X = fs.transform(ds)
    np.testing.assert_array_equal(fs2.transform(ds), X)
    back = fs2.inverse_transform(X, coords={"time": ds.time})
    assert back.b.attrs == ds.b.attrs and back.attrs == ds.attrs
    np.testing.assert_allclose(back.b.values, ds.b.values, rtol=1e-13, atol=1e-14)


# ---------------------------------------------------------------------------- bad input
def test_nan_reports_count_and_location():
    ds = labeled()
    ds["a"][5, 1] = np.nan
    ds["a"][7, 2] = np.inf
    with pytest.raises(DataError, match=r"'a' has 2 non-finite.*time=2.5, k=20"):
        FeatureSpace.fit(ds)
    with pytest.raises(DataError, match="non-finite"):
        FeatureSpace.fit(ds.chunk({"time": 10}))


def test_missing_sample_dim():
    with pytest.raises(DataError, match="sample dim 'step' not found"):
        FeatureSpace.fit(labeled(), dim="step")


def test_constant_feature():
    ds = labeled()
    ds["a"][:, 2] = 4.0
    with pytest.raises(DataError, match=r"constant feature.*a\[k=30\]"):
        FeatureSpace.fit(ds)
    assert FeatureSpace.fit(ds, standardize=False).scale[2] == 1.0


def test_fewer_samples_than_features():
    with pytest.raises(DataError, match="fewer samples"):
        FeatureSpace.fit(labeled(n_time=5))


def test_non_numeric():
    ds = labeled()
    ds["s"] = ("time", np.array(["x"] * 50))
    with pytest.raises(DataError, match="non-numeric"):
        FeatureSpace.fit(ds, variables=["a", "s"])


def test_irregular_steps_reported():
    ds = labeled(n_time=20)
    t = np.cumsum(np.r_[0.0, np.full(9, 0.5), 0.7, np.full(9, 0.5)])
    ds = ds.assign_coords(time=t)
    with pytest.raises(DataError, match=r"irregular steps.*0\.5.*0\.7"):
        FeatureSpace.fit(ds, require_regular=True)
    fs = FeatureSpace.fit(ds)  # allowed when regularity is not needed ...
    with pytest.raises(DataError, match="irregular"):
        fs.sequence_bounds(ds)  # ... but sequences need it


def test_unsorted_time():
    ds = labeled(n_time=20).isel(time=np.r_[0:10, 12, 10, 11, 13:20])
    with pytest.raises(DataError, match="not strictly increasing"):
        FeatureSpace.fit(ds)


def test_wrong_shape_on_transform():
    fs = FeatureSpace.fit(labeled(n_k=3))
    with pytest.raises(DataError, match="feature shape"):
        fs.transform(labeled(n_k=2))
    with pytest.raises(DataError, match="variable 'a' missing"):
        fs.transform(labeled().drop_vars("a"))
    with pytest.raises(DataError, match="features"):
        fs.inverse_transform(np.zeros((4, 3)))


def test_not_xarray():
    with pytest.raises(DataError, match="xarray"):
        FeatureSpace.fit(np.zeros((10, 2)))


def _ensemble(dim_name, n_members=3, n=800, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n_members, n, 2))
    for t in range(1, n):
        x[:, t] = 0.9 * x[:, t - 1] + rng.normal(size=(n_members, 2))
    return xr.DataArray(x, dims=(dim_name, "time", "k"), coords={"time": np.arange(float(n))})


def test_an_unnamed_ensemble_dim_is_refused_and_a_named_one_is_members():
    """CMIP/ERA5 ensemble names (``realization``, ``number``, ...) would otherwise become
    features (a 6-D model of 3 x 2 variables); named, they are sequences like ``member``."""
    da = _ensemble("realization")
    with pytest.raises(DataError, match="member_dim='realization'"):
        da.langevin.fit(score="gaussian", progress=False)
    named = da.langevin.fit(score="gaussian", member_dim="realization", progress=False)
    as_member = da.rename(realization="member").langevin.fit(score="gaussian", progress=False)
    assert named.dim == 2 and named.attrs["n_sequences"] == 3
    np.testing.assert_allclose(named.Phi, as_member.Phi, rtol=1e-12)
    with pytest.raises(DataError, match="member_dim='number'"):
        xlangevin.FeatureSpace.fit(_ensemble("number"))


def test_stacked_feature_coords_survive_generation_and_files(tmp_path):
    """A MultiIndex feature dim (``stack(point=("lat", "lon"))``) comes back in generated
    output, also from a saved model, and unstacks to the grid."""
    rng = np.random.default_rng(0)
    x = np.zeros((800, 2, 3))
    for t in range(1, 800):
        x[t] = 0.9 * x[t - 1] + rng.normal(size=(2, 3))
    grid = xr.DataArray(x, dims=("time", "lat", "lon"),
                        coords={"time": np.arange(800.0), "lat": [10.0, 20.0],
                                "lon": [0.0, 5.0, 10.0]})
    stacked = grid.stack(point=("lat", "lon"))
    model = stacked.langevin.fit(score="gaussian", progress=False)
    loaded = xlangevin.open_model(model.to_netcdf(tmp_path / "m.nc"))
    for m in (model, loaded):
        sim = m.generate(10, 0.5, progress=False, seed=0)
        assert sim.indexes["point"].equals(stacked.indexes["point"])
        xr.testing.assert_equal(sim.unstack("point").lat, grid.lat)
        xr.testing.assert_equal(sim.unstack("point").lon, grid.lon)


@settings(max_examples=40, deadline=None)
@given(n_time=st.integers(2, 30), n_k=st.integers(1, 4), seed=st.integers(0, 10_000),
       dtype=st.sampled_from(["int64", "int16", "float32", "float64", "bool", "complex128"]),
       nan=st.sampled_from(["none", "one", "feature", "sample", "all"]),
       time=st.sampled_from(["numeric", "daily", "hourly", "shuffled", "duplicated", "none"]))
def test_data_layer_fuzz(n_time, n_k, seed, dtype, nan, time):
    """Random sizes, dtypes, NaN patterns and time axes: the data layer either refuses the
    input with a DataError or returns a FeatureSpace whose transform round-trips (float64
    working dtype; a feature NaN at every sample is a mask, NaN again on the way back)."""
    rng = np.random.default_rng(seed)
    values = (rng.normal(size=(n_time, n_k)) * 5).astype(dtype)
    if nan != "none":
        values = values.astype(np.float64) if values.dtype.kind in "iub" else values
        rows = {"one": (rng.integers(n_time),), "sample": (0,), "all": slice(None)}
        if nan == "feature":
            values[:, rng.integers(n_k)] = np.nan
        else:
            values[rows[nan]] = np.nan
    coords = {"numeric": np.arange(n_time) * 0.5,
              "daily": pd.date_range("2000-01-01", periods=n_time, freq="D"),
              "hourly": pd.date_range("2000-01-01", periods=n_time, freq="h"),
              "shuffled": rng.permutation(n_time).astype(float),
              "duplicated": np.zeros(n_time)}
    da = xr.DataArray(values, dims=("time", "k"),
                      coords={"time": coords[time]} if time in coords else {})
    try:
        fs = FeatureSpace.fit(da, require_regular=True)
        X = fs.transform(da)
    except DataError:
        return
    assert X.dtype == np.float64 and np.all(np.isfinite(X))
    back = fs.inverse_transform(X, coords={"time": da.time} if "time" in da.coords else None)
    np.testing.assert_allclose(back.values, values.astype(np.float64), rtol=1e-10, atol=1e-9)
