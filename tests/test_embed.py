"""Delay embedding (xlangevin.delay_embed): labels, exact shifts, sequences, dask, errors and an
oscillator seen through one coordinate, fitted end to end."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xlangevin
from xlangevin import DataError, delay_embed


def _monthly(n=120, seed=0):
    rng = np.random.default_rng(seed)
    time = pd.date_range("1950-01-01", periods=n, freq="MS")
    sst = rng.normal(size=n).cumsum() * 0.1
    slp = rng.normal(size=n) * 3.0 + 1010.0
    return xr.Dataset(
        {"nino34": ("time", sst, {"units": "K", "long_name": "Nino 3.4 SST anomaly"}),
         "soi": ("time", slp, {"units": "hPa"})},
        coords={"time": time, "season": ("time", np.asarray(time.month % 12 // 3))},
        attrs={"title": "two climate indices"})


def test_labels_coords_units_and_exact_shift():
    ds = _monthly()
    x = ds.nino34
    out = delay_embed(x, lags=[3, 6])
    assert isinstance(out, xr.DataArray) and out.name == "nino34"
    assert out.dims == ("time", "lag")
    assert out.lag.values.tolist() == [0, 3, 6]
    assert out.lag.attrs["units"] == "samples"
    np.testing.assert_array_equal(out.lag.attrs["lag_time"], [0.0, 3.0, 6.0])
    assert "MS" in out.lag.attrs["lag_time_units"]
    assert out.attrs == x.attrs
    # the first max(lag) samples are dropped, never filled
    assert out.sizes["time"] == x.sizes["time"] - 6
    np.testing.assert_array_equal(out.time.values, x.time.values[6:])
    np.testing.assert_array_equal(out.season.values, x.season.values[6:])
    assert np.all(np.isfinite(out.values))
    v = x.values
    for k in (0, 3, 6):       # numpy-slicing oracle: x(t - k)
        np.testing.assert_array_equal(out.sel(lag=k).values, v[6 - k:v.size - k])
    # scalar lag, unordered lags, lags as time deltas give the same thing
    assert delay_embed(x, 6).lag.values.tolist() == [0, 6]
    xr.testing.assert_identical(delay_embed(x, [6, 3]), out)
    xr.testing.assert_identical(delay_embed(x, ["3MS", np.timedelta64(6, "M")]), out)
    xr.testing.assert_identical(delay_embed(x, [pd.DateOffset(months=3), 6.0]), out)


def test_numeric_axis_float_lags_and_unnamed():
    t = np.arange(50) * 0.25
    x = xr.DataArray(np.sin(t), dims="t", coords={"t": ("t", t, {"units": "s"})})
    out = delay_embed(x, [0.5, 1.0], dim="t")
    assert out.name is None and out.lag.values.tolist() == [0, 2, 4]
    np.testing.assert_allclose(out.lag.attrs["lag_time"], [0.0, 0.5, 1.0])
    assert out.lag.attrs["lag_time_units"] == "s"
    np.testing.assert_array_equal(out.sel(lag=4).values, x.values[:-4])
    with pytest.raises(DataError, match="whole number of samples"):
        delay_embed(x, [0.3], dim="t")


def test_dataset_of_two_variables_keeps_each_units():
    ds = _monthly()
    out = delay_embed(ds, [2, 5])
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"nino34", "soi"}
    assert out.attrs == ds.attrs
    assert out.nino34.attrs["units"] == "K" and out.soi.attrs["units"] == "hPa"
    assert out.soi.dims == ("time", "lag")
    np.testing.assert_array_equal(out.soi.sel(lag=5).values, ds.soi.values[:-5])
    np.testing.assert_array_equal(out.nino34.sel(lag=2).values, ds.nino34.values[3:-2])
    # both variables go through the data layer together: 2 variables x 3 lags
    space = xlangevin.FeatureSpace.fit(out)
    assert space.n_features == 6
    assert "soi[lag=5]" in space.feature_labels()


def test_gap_states_never_cross_it():
    ds = _monthly(60)
    gappy = ds.drop_isel(time=[20])            # a missing month
    out = delay_embed(gappy.nino34, [3])
    kept = out.time.values
    # every state has all its samples in the record at exactly t - k months
    full = ds.nino34
    for k in (0, 3):
        want = full.sel(time=pd.DatetimeIndex(kept) - pd.DateOffset(months=k)).values
        np.testing.assert_array_equal(out.sel(lag=k).values, want)
    # no window covers the missing month: states at months 21..23 (whose window contains it)
    # and the first 3 are dropped
    months = (pd.DatetimeIndex(kept).year - 1950) * 12 + pd.DatetimeIndex(kept).month - 1
    assert months.min() == 3 and 20 not in months
    assert not set(range(20, 24)) & set(months)
    assert out.sizes["time"] == 59 - 3 - 3
    # the fit sees two sequences
    space = xlangevin.FeatureSpace.fit(out)
    assert space.sequence_bounds(out).size - 1 == 2


def test_members_are_embedded_separately():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 40))
    x = xr.DataArray(data, dims=("member", "time"), coords={"time": np.arange(40.0)}, name="x")
    out = delay_embed(x, [1, 4])
    assert out.dims == ("member", "time", "lag")
    for m in range(3):
        for k in (0, 1, 4):
            np.testing.assert_array_equal(out.isel(member=m).sel(lag=k).values,
                                          data[m, 4 - k:40 - k])


def test_dask_input_stays_lazy(raise_if_dask_computes):
    ds = _monthly().chunk({"time": 25})
    with raise_if_dask_computes(0):
        out = delay_embed(ds, [3, 6])
        gappy = delay_embed(ds.drop_isel(time=[50]), [3])
    assert out.nino34.chunks is not None and gappy.soi.chunks is not None
    xr.testing.assert_identical(out.compute(), delay_embed(ds.compute(), [3, 6]))
    xr.testing.assert_identical(gappy.compute(),
                                delay_embed(ds.compute().drop_isel(time=[50]), [3]))


@pytest.mark.parametrize("lags, match", [
    ([0, 3], "positive"), ([-2], "positive"), ([3, 3], "twice"), ([], "empty"),
    ([200], "not shorter than the record"), ([True], "bool"),
    (["1D"], "fixed duration"), ([object()], "time delta"),
])
def test_bad_lags(lags, match):
    with pytest.raises(DataError, match=match):
        delay_embed(_monthly().nino34, lags)


def test_bad_input():
    x = _monthly().nino34
    with pytest.raises(DataError, match="sample dim 'date' not found"):
        delay_embed(x, [1], dim="date")
    with pytest.raises(DataError, match="expected an xarray"):
        delay_embed(x.values, [1])
    with pytest.raises(DataError, match="already has 'lag'"):
        delay_embed(delay_embed(x, [1]), [1])
    short = x.isel(time=[0, 1, 2, 5, 6, 7, 10, 11])       # runs of 3, 3 and 2 samples
    with pytest.raises(DataError, match="no embedded state left.*longest has 3"):
        delay_embed(short, [3])
    jitter = x.assign_coords(time=x.time + pd.to_timedelta(
        np.random.default_rng(0).integers(0, 5, x.sizes["time"]), unit="D").values)
    with pytest.raises(DataError, match="irregular steps"):
        delay_embed(jitter, [1])


# ------------------------------------------------------------------------------------------
# end to end: a damped rotation observed in one coordinate
# ------------------------------------------------------------------------------------------
def _rotation(n=3000, period=20.0, decay=0.05, seed=0):
    rng = np.random.default_rng(seed)
    th = 2 * np.pi / period
    R = np.exp(-decay) * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    z = np.zeros((n, 2))
    for i in range(1, n):
        z[i] = R @ z[i - 1] + rng.normal(size=2)
    time = xr.DataArray(np.arange(n) * 0.5, dims="time", attrs={"units": "s"})
    return xr.DataArray(z[:, 0], dims="time", coords={"time": time}, name="x",
                        attrs={"units": "m"})


def _acf(a, n_lags):
    a = np.asarray(a, dtype=np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    var = (a * a).mean()
    return np.array([(a[..., :a.shape[-1] - k] * a[..., k:]).mean() / var
                     for k in range(n_lags)])


def test_embedded_oscillator_end_to_end():
    x = _rotation()
    acf_data = _acf(x.values, 16)
    assert acf_data.min() < -0.4                          # the oscillation is in the record
    options = dict(score="gmm", score_options={"sigma": 0.3}, seed=0, progress=False)
    emb = delay_embed(x, lags=[2, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = emb.langevin.fit(**options)
        flat = x.langevin.fit(**options)
    # the embedded model rotates: Phi_A is a sizeable part of Phi, in the data's units
    assert model.Phi_A.dims == ("feature_i", "feature_j")
    assert float(np.abs(model.Phi_A).max()) > 0.3 * float(np.abs(model.Phi).max())
    assert model.Phi.attrs["units"] == "(m)^2 / (s)"
    # dt = 0.125: at 0.25 the embedded model's resets pass generate's 0.1 % cap
    run = dict(n_steps=4 * 2000, dt=0.125, save_every=4, n_members=4, seed=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = model.generate(**run)
        sim_flat = flat.generate(**run)
    assert sim.dims == ("member", "time", "lag") and sim.lag.values.tolist() == [0, 2, 4]
    assert sim.attrs["units"] == "m" and sim.time.values[0] > x.time.values[-1]
    observed = sim.sel(lag=0)
    assert observed.dims == ("member", "time")
    acf_emb, acf_flat = _acf(observed.values, 16), _acf(sim_flat.values, 16)
    # the embedded model's autocorrelation turns negative like the data's, near the same lag;
    # the one-dimensional reversible model's cannot
    assert acf_emb.min() < -0.25
    assert abs(int(np.argmin(acf_emb)) - int(np.argmin(acf_data))) <= 3
    assert acf_flat.min() > -0.05
    xlangevin.compare(x, observed)                         # the usual diagnostics apply
