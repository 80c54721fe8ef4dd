"""Gridded fields: land masks and the EOF reduction of the data layer (docs/fields.md)."""

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xlangevin
from xlangevin import EOF, DataError, FeatureSpace, open_model

NY, NX, K = 6, 8, 3
LAT = np.linspace(-60.0, 60.0, NY)
LON = np.arange(NX) * 20.0


def _field(n=2000, seed=0, noise=0.05, freq="D", seasonal=0.0):
    """``K`` AR(1) modes on a (lat, lon) grid plus small white noise, land (NaN at every time)
    in one corner; returns (field, true PCs, true patterns)."""
    rng = np.random.default_rng(seed)
    pcs, a = np.zeros((n, K)), np.array([0.95, 0.9, 0.8])
    for t in range(1, n):
        pcs[t] = a * pcs[t - 1] + np.sqrt(1 - a**2) * rng.normal(size=K) * [3.0, 2.0, 1.0]
    patterns = rng.normal(size=(K, NY * NX))
    time = pd.date_range("2000-01-01", periods=n, freq=freq)
    cycle = seasonal * np.cos(2 * np.pi * (time.month.values - 1) / 12)[:, None]
    X = 15.0 + pcs @ patterns + cycle + noise * rng.normal(size=(n, NY * NX))
    X = X.reshape(n, NY, NX)
    X[:, :2, :3] = np.nan                                   # land
    da = xr.DataArray(X, dims=("time", "lat", "lon"), name="sst",
                      coords={"time": time, "lat": ("lat", LAT, {"units": "degrees_north"}),
                              "lon": LON}, attrs={"units": "K", "long_name": "SST"})
    return da, pcs, patterns


LAND = np.zeros((NY, NX), dtype=bool)
LAND[:2, :3] = True


# ---------------------------------------------------------------------------------- masks
def test_land_is_a_mask_that_never_enters_the_fit():
    da, _, _ = _field(n=400)
    fs = FeatureSpace.fit(da)
    assert fs.n_features == NY * NX - LAND.sum() and fs.n_grid == NY * NX
    assert not any("lat=-60.0, lon=0.0" in s for s in fs.feature_labels())
    # the same numbers as the ocean points alone, stacked into one feature dim
    ocean = da.stack(p=("lat", "lon")).dropna("p", how="all")
    ref = FeatureSpace.fit(ocean.drop_vars(["p", "lat", "lon"]))
    np.testing.assert_allclose(fs.mean, ref.mean, rtol=1e-14)
    np.testing.assert_allclose(fs.transform(da), ref.transform(ocean.drop_vars(
        ["p", "lat", "lon"])), rtol=1e-12, atol=1e-12)
    back = fs.inverse_transform(fs.transform(da), coords={"time": da.time})
    assert back.isnull().all("time").values.tolist() == LAND.tolist()
    np.testing.assert_allclose(back.values, da.values, rtol=1e-13)   # NaN == NaN here
    assert back.attrs == da.attrs and back.lat.attrs == da.lat.attrs


def test_mask_is_saved_and_generated_fields_keep_it(tmp_path):
    da, _, _ = _field(n=600)
    model = da.isel(lat=slice(0, 3), lon=slice(0, 5)).langevin.fit(
        score="gaussian", cdot="lagged", progress=False, seed=0)
    assert model.dim == 15 - 6
    sim = model.generate(50, 0.5, n_members=2, seed=1, progress=False)
    land = np.isnan(sim.values)
    assert land.all(axis=(0, 1)).tolist() == LAND[:3, :5].tolist()
    assert not land[..., ~LAND[:3, :5]].any()
    path = model.to_netcdf(tmp_path / "m.nc")
    again = open_model(path)
    assert again.space.keep.tolist() == model.space.keep.tolist()
    sim2 = again.generate(50, 0.5, n_members=2, seed=1, progress=False)
    xr.testing.assert_identical(sim.drop_attrs(), sim2.drop_attrs())


def test_nan_that_varies_in_time_raises():
    da, _, _ = _field(n=300)
    bad = da.copy()
    bad[10, 4, 4] = np.nan
    where = r"1 non-finite.*vary along 'time'.*time=2000-01-11.*lat=36.0, lon=80.0"
    with pytest.raises(DataError, match=where):
        FeatureSpace.fit(bad)
    with pytest.raises(DataError, match="non-finite"):
        FeatureSpace.fit(bad.chunk({"time": 50}))
    with pytest.raises(DataError, match="non-finite"):
        FeatureSpace.fit(bad, reduce=EOF(n_modes=2))
    inf = da.copy()
    inf[:, 4, 4] = np.inf                     # infinite everywhere is no mask
    with pytest.raises(DataError, match="non-finite"):
        FeatureSpace.fit(inf)
    fs = FeatureSpace.fit(da)                 # new data: NaN at every time where the fit had data
    lost = da.copy()
    lost[:, 4, 4] = np.nan
    with pytest.raises(DataError, match=r"NaN at every sample where the fitted data"):
        fs.transform(lost)


# ------------------------------------------------------------------------- EOF reduction
def test_eof_finds_the_modes_and_rebuilds_the_field():
    da, pcs, patterns = _field(n=2000)
    fs = FeatureSpace.fit(da, reduce=EOF(variance=0.99))
    red = fs.reduction
    assert red.n_modes == K and fs.n_features == K
    assert fs.feature_labels() == ["pc[mode=1]", "pc[mode=2]", "pc[mode=3]"]
    w = np.sqrt(np.cos(np.deg2rad(LAT)))[:, None] * np.ones(NX)
    np.testing.assert_allclose(red.weights, w[~LAND], rtol=1e-14)
    # the EOFs span the weighted true patterns (ocean points)
    true = patterns[:, ~LAND.ravel()] * w[~LAND]
    q, _ = np.linalg.qr(true.T)
    resid = red.patterns.T - q @ (q.T @ red.patterns.T)
    assert np.abs(resid).max() < 0.01
    X = fs.transform(da)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=1e-12)
    back = fs.inverse_transform(X, coords={"time": da.time})
    err = (back - da).values[:, ~LAND]
    assert np.sqrt(np.mean(err**2)) < 0.05           # the white noise left out
    assert np.isnan(back.values[:, LAND]).all()
    # PCs on request: physical units, and the same as projecting the rebuilt field
    p = fs.pcs(back)
    assert p.dims == ("time", "mode") and p.attrs["units"] == "K"
    np.testing.assert_allclose(p.values, fs.to_physical(X), rtol=1e-9, atol=1e-9)


def test_eof_matches_numpy_svd_and_dask():
    da, _, _ = _field(n=500)
    fs = FeatureSpace.fit(da, reduce=EOF(n_modes=4, weights=None))
    A = da.values.reshape(500, -1)[:, ~LAND.ravel()]
    A = A - A.mean(axis=0)
    _, s, vt = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(vt[:4] * fs.reduction.patterns, axis=1)), 1.0,
                               atol=1e-8)
    np.testing.assert_allclose(fs.reduction.explained_variance_ratio,
                               s[:4] ** 2 / np.sum(s**2), rtol=1e-8)
    lazy = FeatureSpace.fit(da.chunk({"time": 100}), reduce=EOF(n_modes=4, weights=None))
    # dask: xeofs' randomized SVD, exact to rounding for the 3 modes above the noise
    np.testing.assert_allclose(np.abs(np.sum(lazy.reduction.patterns * fs.reduction.patterns,
                                             axis=1))[:3], 1.0, atol=1e-8)
    assert isinstance(lazy.transform(da.chunk({"time": 100})), dsa.Array)


def test_seasonal_anomalies_add_the_month_back():
    da, _, _ = _field(n=240, freq="MS", seasonal=4.0)
    fs = FeatureSpace.fit(da, reduce=EOF(n_modes=3, anomalies="seasonal"))
    assert fs.reduction.seasonal
    zero = np.zeros((12, 3))
    mean_pc = (-fs.mean / fs.scale)[None, :] + zero        # standardized value of PC = 0
    months = pd.date_range("2050-01-01", periods=12, freq="MS")
    clim = fs.inverse_transform(mean_pc, coords={"time": months})
    data_clim = da.groupby("time.month").mean()
    np.testing.assert_allclose(clim.values, data_clim.values, atol=1e-10)
    # the seasonal cycle is not in the PCs: their monthly means vanish
    pcs = fs.pcs(da)
    assert float(abs(pcs.groupby("time.month").mean()).max()) < 1e-10


def test_reduced_langevin_model_end_to_end(tmp_path):
    da, _, _ = _field(n=1500)
    model = da.langevin.fit(score="gaussian", cdot="logm", reduce=EOF(n_modes=K),
                            progress=False, seed=0)
    assert model.dim == K and model.Phi.dims == ("feature_i", "feature_j")
    sim = model.generate(400, 1.0, n_members=2, seed=3, progress=False)
    assert sim.dims == ("member", "time", "lat", "lon") and sim.name == "sst"
    assert sim.attrs["units"] == "K" and sim.attrs["long_name"] == "SST"
    assert np.isnan(sim.values[..., LAND]).all() and not np.isnan(sim.values[..., ~LAND]).any()
    np.testing.assert_array_equal(sim.lat, da.lat)
    assert sim.time.dtype == da.time.dtype
    # the generated field's gridpoint std matches the data's (a linear model of the PCs)
    ratio = sim.std(("member", "time")) / da.std("time")
    assert float(abs(ratio - 1).where(~LAND).max()) < 0.35
    again = open_model(model.to_netcdf(tmp_path / "m.nc"))
    assert again.space.reduction.n_modes == K
    np.testing.assert_allclose(again.space.reduction.patterns, model.space.reduction.patterns)
    sim2 = again.generate(400, 1.0, n_members=2, seed=3, progress=False)
    np.testing.assert_array_equal(sim2.values, sim.values)
    score = model.score(da.isel(time=slice(0, 5)))
    assert score.dims == ("time", "mode")


def test_eof_errors_say_what_to_change():
    da, _, _ = _field(n=100)
    with pytest.raises(ValueError, match="variance must be in"):
        FeatureSpace.fit(da, reduce=EOF(variance=1.5))
    with pytest.raises(ValueError, match="anomalies must be one of"):
        FeatureSpace.fit(da, reduce=EOF(anomalies="daily"))
    with pytest.raises(DataError, match="n_modes=500 exceeds"):
        FeatureSpace.fit(da, reduce=EOF(n_modes=500))
    with pytest.raises(DataError, match="needs a latitude coordinate"):
        FeatureSpace.fit(da.rename(lat="y").assign_coords(y=LAT), reduce=EOF(n_modes=2))
    with pytest.raises(DataError, match="every calendar month"):
        FeatureSpace.fit(da, reduce=EOF(n_modes=2, anomalies="seasonal"))
    with pytest.raises(DataError, match=r"reduce a gridded field .*xlangevin.EOF"):
        FeatureSpace.fit(da.isel(time=slice(0, 20)))
    assert xlangevin.EOF is EOF


# ------------------------------------------------------------------ the gridded benchmark
def test_gridded_benchmark_is_masked_skewed_and_matches_its_drift():
    from xlangevin.systems import gridded

    ds = gridded.simulate(n_samples=600, burn_in=100.0, seed=1)
    T, land = ds["T"], ds["land"].values
    assert T.dims == ("time", "lat", "lon") and T.attrs["units"] == "K"
    assert np.issubdtype(ds.time.dtype, np.datetime64)
    assert T.isnull().all("time").values.tolist() == land.tolist() and 0.1 < land.mean() < 0.4
    assert not T.isnull().values[:, ~land].any()
    x = T.values[:, ~land].astype(np.float64)
    a = x - x.mean(0)
    skew = (a**3).mean(0) / (a**2).mean(0) ** 1.5
    assert np.median(skew) > 0.15                       # b > 0: positive skewness
    # one numba step equals the documented drift plus the noise
    u = np.where(land, 0.0, np.random.default_rng(0).normal(size=land.shape))[None]
    noise = np.where(land, 0.0, 0.01 * np.random.default_rng(1).normal(size=land.shape))
    expect = u + 0.1 * gridded.drift(u, land) + noise
    gridded._em_steps(u, land, noise[None, None], np.array([0.1, 1.0, 0.4, 0.25, 0.35, 0.15]))
    np.testing.assert_allclose(u, expect, rtol=1e-12, atol=1e-14)
    again = gridded.simulate(n_samples=600, burn_in=100.0, seed=1)
    xr.testing.assert_identical(ds, again)
    with pytest.raises(ValueError, match="single-well"):
        gridded.simulate(n_samples=10, b=2.0)


# --------------------------------------------------------------------- compare_fields
def test_compare_fields_scores_against_known_answers():
    da, _, _ = _field(n=1500)
    half = da.isel(time=slice(0, 750))
    same = xlangevin.compare_fields(half, half.expand_dims(member=2).copy())
    assert list(same.source.values) == ["data", "model"]
    for key in ("variance", "acf1", "skewness"):
        np.testing.assert_allclose(same[f"{key}_pattern_correlation"], 1.0, atol=1e-12)
        np.testing.assert_allclose(same[f"{key}_rmse"], 0.0, atol=1e-12)
    np.testing.assert_allclose(same.pc_kl.sel(source="model"), 0.0, atol=1e-12)
    np.testing.assert_allclose(same.area_mean_acf.sel(source="model"),
                               same.area_mean_acf.sel(source="data"), atol=1e-12)
    assert same.variance.sel(source="model").isnull().values[LAND].all()
    # anomalies scaled by 1.1: variance maps 21 % too large, the ACF map unchanged
    clim = half.mean("time")
    big = clim + 1.1 * (half - clim)
    rep = xlangevin.compare_fields(half, big, baselines={"other": da.isel(time=slice(750, None))},
                                   n_modes=3)
    v = rep.variance.sel(source="data").values[~LAND]
    w = np.cos(np.deg2rad(LAT))[:, None].repeat(NX, 1)[~LAND]
    rms, mean = np.sqrt(np.sum(w * v**2) / w.sum()), np.sum(w * v) / w.sum()
    np.testing.assert_allclose(rep.variance_rmse.sel(source="model"), 0.21 * rms / mean,
                               rtol=1e-6)
    np.testing.assert_allclose(rep.variance_pattern_correlation.sel(source="model"), 1.0,
                               atol=1e-12)
    np.testing.assert_allclose(rep.acf1_rmse.sel(source="model"), 0.0, atol=1e-12)
    np.testing.assert_allclose(rep.pc_variance.sel(source="model"),
                               1.21 * rep.pc_variance.sel(source="data"), rtol=1e-9)
    other = rep.sel(source="other")           # an independent stretch of the same process
    assert other.variance_pattern_correlation > 0.9
    with pytest.raises(DataError, match="save_every"):
        xlangevin.compare_fields(half, half.isel(time=slice(None, None, 2)))


# ---------------------------------------------------------------------------------- maps
def _has_coastlines(fig):
    return any(a.get_gid() == "coastlines" for ax in fig.axes for a in ax.get_children())


def test_maps_render_offline(tmp_path, monkeypatch):
    pytest.importorskip("cartopy")
    from xlangevin.analysis import maps

    da, _, _ = _field(n=300)
    rep = xlangevin.compare_fields(da, da.isel(time=slice(None, 150)), n_modes=2)
    path = tmp_path / "variance.png"
    fig = maps.field_maps(rep, "variance", path=path)
    assert path.stat().st_size > 10_000
    img = __import__("matplotlib.image", fromlist=["imread"]).imread(path)
    assert img[..., :3].std() > 0.05                       # not a blank canvas
    if maps.coastline_file() is not None:                   # offline data installed
        assert _has_coastlines(fig)
    monkeypatch.setenv("XLANGEVIN_COASTLINES", str(tmp_path / "none.shp"))
    assert maps.coastline_file() is None
    fig = maps.field_maps(rep, "acf1", path=tmp_path / "acf1.png")
    assert not _has_coastlines(fig) and "no coastline data" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no map 'pc_kl'"):
        maps.field_maps(rep, "pc_kl")
