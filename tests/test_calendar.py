"""Calendar time end to end: datetime64 and cftime records (monthly, daily) go through
ds.langevin.fit -> generate -> compare with no conversion; dt as a time delta; gaps are
sequences, jitter is an error."""

import datetime
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xlangevin
from xlangevin import DataError
from xlangevin.data.timeaxis import duration_in_units, time_units

FIT = dict(score="gmm", score_options={"sigma": 0.3}, seed=0, progress=False)


def _ar1(n, phi=0.8, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.normal()
    return x


def _record(time, seed=0):
    return xr.Dataset({"x": ("time", _ar1(len(time), seed=seed), {"units": "K"})},
                      coords={"time": time})


def _fit(obj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # Cdot/Phi diagnostics of a tiny record
        return obj.langevin.fit(**FIT)


def _generate(model, **kw):
    kw = dict(dict(n_steps=400, dt=0.25, save_every=4, n_members=2, seed=0, progress=False), **kw)
    return model.generate(**kw)


@pytest.fixture(scope="module")
def monthly():
    return _record(pd.date_range("1950-01-01", periods=600, freq="MS"))


@pytest.fixture(scope="module")
def monthly_model(monthly):
    return _fit(monthly.x)


@pytest.fixture(scope="module")
def noleap_daily():
    time = xr.date_range("2001-01-01", periods=600, freq="D", calendar="noleap",
                         use_cftime=True)
    return _record(time, seed=1)


@pytest.fixture(scope="module")
def noleap_model(noleap_daily):
    return _fit(noleap_daily.x)


def test_monthly_datetime_end_to_end(monthly, monthly_model):
    model = monthly_model
    assert model.space.time["freq"] == "MS" and model.space.dt == 1.0
    assert time_units(model.space) == "steps of frequency MS"
    assert model.attrs["n_sequences"] == 1
    sim = _generate(model)
    t = pd.DatetimeIndex(sim.time.values)
    assert np.issubdtype(sim.time.dtype, np.datetime64)
    assert sim.sizes["time"] == 100
    assert np.all(t.day == 1) and np.all(t.normalize() == t)          # month starts
    last = pd.Timestamp(monthly.time.values[-1])
    assert t[0] == last + pd.DateOffset(months=1)
    assert t.equals(pd.date_range(t[0], periods=100, freq="MS").as_unit(t.unit))
    assert sim.attrs["time_units"] == "steps of frequency MS"
    report = xlangevin.compare(monthly.x, sim)
    assert isinstance(report, xr.Dataset)


def test_cftime_noleap_daily_end_to_end(noleap_daily, noleap_model):
    model = noleap_model
    assert model.space.time["kind"] == "cftime" and model.space.time["calendar"] == "noleap"
    assert time_units(model.space) == "days"
    sim = _generate(model)
    values = sim.time.values
    assert values.dtype == object and all(v.calendar == "noleap" for v in values)
    assert isinstance(sim.indexes["time"], xr.CFTimeIndex)
    last = noleap_daily.time.values[-1]
    assert values[0] == last + datetime.timedelta(days=1)
    assert all((b - a) == datetime.timedelta(days=1) for a, b in zip(values[:-1], values[1:]))
    # noleap: from 2001-01-01 over 700 days, Feb 29 never appears
    report = xlangevin.compare(noleap_daily.x, sim)
    assert isinstance(report, xr.Dataset)


@pytest.mark.parametrize("dt, save_every", [
    ("1D", 1), (np.timedelta64(1, "D"), 1), (datetime.timedelta(days=1), 1),
    (pd.Timedelta(hours=6), 4), ("6h", 4), (np.timedelta64(360, "m"), 4)])
def test_dt_as_time_delta_daily(noleap_model, dt, save_every):
    number = 1.0 / save_every
    a = _generate(noleap_model, n_steps=40, dt=dt, save_every=save_every)
    b = _generate(noleap_model, n_steps=40, dt=number, save_every=save_every)
    xr.testing.assert_identical(a, b)
    assert a.attrs["dt"] == number


@pytest.mark.parametrize("dt", ["1MS", np.timedelta64(1, "M"), pd.DateOffset(months=1),
                                pd.offsets.MonthBegin(1)])
def test_dt_in_months_for_monthly_data(monthly_model, dt):
    a = _generate(monthly_model, n_steps=20, dt=dt, save_every=1)
    b = _generate(monthly_model, n_steps=20, dt=1.0, save_every=1)
    xr.testing.assert_identical(a, b)


def test_dt_time_delta_errors(monthly_model):
    with pytest.raises(DataError, match="calendar month"):
        _generate(monthly_model, dt="1D")
    with pytest.raises(DataError, match="cannot read"):
        _generate(monthly_model, dt="fortnightish")
    with pytest.raises(DataError, match="time delta"):
        _generate(monthly_model, dt=[1.0])


def test_duration_in_units_axes():
    days = {"kind": "numeric", "units": "days since 1850-01-01", "freq": ""}
    assert duration_in_units(days, 1.0, np.timedelta64(12, "h")) == 0.5
    assert duration_in_units({"kind": "numeric", "units": "hours"}, 1.0, "1D") == 24.0
    assert duration_in_units({"kind": "datetime", "freq": ""}, 1.0, "36h") == 1.5
    assert duration_in_units({"kind": "datetime", "freq": "QS-DEC"}, 1.0, "6MS") == 2.0
    assert duration_in_units({"kind": "cftime", "freq": "YS-JAN"}, 1.0,
                             np.timedelta64(6, "M")) == 0.5
    assert duration_in_units({"kind": "index"}, 1.0, 3) == 3.0
    with pytest.raises(DataError, match="no time coordinate"):
        duration_in_units({"kind": "index"}, 1.0, "1D")
    with pytest.raises(DataError, match="numeric time coordinate in units 'm'"):
        duration_in_units({"kind": "numeric", "units": "m"}, 1.0, "1D")
    with pytest.raises(DataError, match="measured in days"):
        duration_in_units({"kind": "datetime", "freq": ""}, 1.0, "1MS")


def test_missing_month_is_two_sequences(monthly):
    gappy = monthly.drop_isel(time=[300])
    model = _fit(gappy.x)
    assert model.attrs["n_sequences"] == 2
    assert model.space.time["freq"] == "MS" and model.space.dt == 1.0
    sim = _generate(model, n_steps=40)
    t = pd.DatetimeIndex(sim.time.values)
    assert np.all(t.day == 1)
    assert t[0] == pd.Timestamp(gappy.time.values[-1]) + pd.DateOffset(months=1)
    xlangevin.compare(gappy.x, sim)


def test_month_ends_and_quarters_with_gaps():
    ends = _record(pd.date_range("1950-01-31", periods=200, freq="ME")).drop_isel(time=[50, 51])
    model = _fit(ends.x)
    assert model.attrs["n_sequences"] == 2 and model.space.time["freq"] == "ME"
    t = pd.DatetimeIndex(_generate(model, n_steps=12).time.values)
    assert np.all(t.is_month_end) and t[0] == pd.Timestamp("1966-09-30")
    quarters = _record(xr.date_range("1900-01-01", periods=200, freq="QS-JAN", calendar="360_day",
                                     use_cftime=True)).drop_isel(time=[100])
    model = _fit(quarters.x)
    assert model.attrs["n_sequences"] == 2 and model.space.time["freq"] == "3MS"
    values = _generate(model, n_steps=8).time.values
    assert [(v.year, v.month, v.day) for v in values[:2]] == [(1950, 1, 1), (1950, 4, 1)]


def test_missing_day_is_two_sequences(noleap_daily):
    model = _fit(noleap_daily.x.drop_isel(time=[100, 101]))
    assert model.attrs["n_sequences"] == 2 and model.space.dt == 1.0


def test_jittered_axis_raises_clear_error(monthly):
    rng = np.random.default_rng(0)
    start = np.datetime64("1950-01-01T00:00", "s")
    jitter = start + (np.arange(600) * 86400 + rng.integers(-7200, 7200, 600)).astype(
        "timedelta64[s]")
    x = monthly.x.assign_coords(time=jitter)
    with pytest.raises(DataError, match=r"irregular steps in 'time'.*days.*not whole multiples"
                                        r".*never interpolated"):
        _fit(x)
    # monthly means stamped mid-month are not a month grid: the message says how to relabel
    mid = monthly.x.assign_coords(time=monthly.time + np.timedelta64(14, "D"))
    with pytest.raises(DataError, match="month starts"):
        _fit(mid)


def test_saved_model_keeps_the_calendar(tmp_path, monthly):
    gappy = xlangevin.delay_embed(monthly.x.drop_isel(time=[100]), ["3MS", 6])
    model = _fit(gappy)
    model.to_netcdf(tmp_path / "model.nc")
    loaded = xlangevin.open_model(tmp_path / "model.nc")
    assert loaded.space.time["freq"] == "MS" and loaded.attrs["n_sequences"] == 2
    a = _generate(model, n_steps=12, dt="1MS", save_every=1)
    b = _generate(loaded, n_steps=12, dt=np.timedelta64(1, "M"), save_every=1)
    np.testing.assert_array_equal(a.time.values, b.time.values)
    np.testing.assert_allclose(a.values, b.values)
    assert b.lag.values.tolist() == [0, 3, 6] and b.lag.attrs["lag_time_units"] == \
        "steps of frequency MS"


@pytest.mark.parametrize("freq", ["1h", "10min", "6h"])
def test_sub_daily_steps_stay_exact(freq):
    """The spacing is taken from whole nanoseconds (days since the start rounded each step, and
    generated hours drifted by 2 ns a step, so ``infer_freq`` failed)."""
    rng = np.random.default_rng(0)
    x = np.zeros((600, 2))
    for t in range(1, len(x)):
        x[t] = 0.9 * x[t - 1] + rng.normal(size=2)
    da = xr.DataArray(x, dims=("time", "k"),
                      coords={"time": pd.date_range("2000-01-01", periods=600, freq=freq)})
    model = da.langevin.fit(score="gaussian", seed=0, progress=False)
    step = pd.Timedelta(freq)
    assert model.space.dt == step / pd.Timedelta("1D")
    for sim in (_generate(model, n_steps=50, dt=step, save_every=1),
                _generate(model, n_steps=200, dt=step / 4, save_every=4)):
        assert pd.infer_freq(sim.time.values) == pd.tseries.frequencies.to_offset(freq).freqstr
        assert np.all(np.diff(sim.time.values) == step.to_timedelta64())
