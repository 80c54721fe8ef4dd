"""The Gaussian score, the LIM / AR(1) baselines and their place in ``compare`` reports."""

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla
import xarray as xr

import xlangevin
from xlangevin import compare, lim, lim_operators
from xlangevin.analysis import format_report
from xlangevin.data import DataError
from xlangevin.dynamics.cdot import lagged_covariances
from xlangevin.score import Gaussian

A_TRUE = np.array([[-0.2, -0.5], [0.5, -0.3]])   # a damped rotation (per time unit)
DT = 0.1


@pytest.fixture(scope="module")
def ou():
    """A 2-D OU record dx = A x dt + sqrt(2) dW sampled exactly every DT, the second
    coordinate in other units (x 10), on a monthly datetime axis."""
    rng = np.random.default_rng(0)
    F = sla.expm(A_TRUE * DT)
    C = sla.solve_continuous_lyapunov(A_TRUE, -2 * np.eye(2))   # stationary covariance
    Q = C - F @ C @ F.T
    noise = rng.multivariate_normal(np.zeros(2), Q, size=40_000)
    x = np.empty((40_000, 2))
    x[0] = rng.multivariate_normal(np.zeros(2), C)
    for t in range(1, len(x)):
        x[t] = F @ x[t - 1] + noise[t]
    return xr.DataArray(x * [1.0, 10.0] + [5.0, -3.0], dims=("time", "station"),
                        coords={"time": np.arange(len(x)) * DT, "station": ["a", "b"]},
                        name="x", attrs={"units": "K"})


def test_gaussian_score_is_the_linear_score_of_the_fitted_gaussian(ou):
    X = ou.values
    model = Gaussian().fit(ou)
    C = np.cov(X, rowvar=False, bias=True)
    expected = -np.linalg.solve(C, (X[:5] - X.mean(0)).T).T
    np.testing.assert_allclose(model(X[:5]), expected, rtol=1e-10)
    assert model.sigma == 0 and model.method == "gaussian"
    # its Stein matrix on its own data is exactly -I
    V = model(X).T @ (X - X.mean(0)) / len(X)
    np.testing.assert_allclose(V, -np.eye(2), atol=1e-10)


def test_gaussian_score_rejects_collinear_features_and_accepts_shrinkage():
    x = np.random.default_rng(1).normal(size=1000)
    X = np.stack([x, 2 * x], axis=1)
    with pytest.raises(DataError, match="singular"):
        Gaussian().fit(X)
    assert np.isfinite(Gaussian(shrinkage=0.1).fit(X)(X[:3])).all()
    with pytest.raises(ValueError, match="shrinkage must be"):
        Gaussian(shrinkage=1.0).fit(X)


def test_lim_recovers_the_operator_and_the_fluctuation_dissipation_relation(ou):
    model = lim(ou, lag=1, seed=0)
    ops = lim_operators(model)
    S = np.diag([1.0, 10.0])
    L_true = S @ A_TRUE @ np.linalg.inv(S)     # physical units, per time unit of the axis
    err = np.abs(ops.L.values - L_true).max() / np.abs(L_true).max()
    print(f"LIM L relative error {err:.3f}; FDT residual {ops.attrs['fdt_residual']:.1e}")
    assert err < 0.05      # 40000 samples of a 0.2-per-unit relaxation: ~1-2 % sampling error
    assert ops.attrs["fdt_residual"] < 1e-10
    # L is the matrix log of the lag-1 propagator of the data (up to O(1/n): the Gaussian's
    # C0 averages all n samples, the propagator's the n - 1 sources of the lag-1 pairs)
    C = lagged_covariances(ou.values, [0, 1])
    np.testing.assert_allclose(sla.expm(ops.L.values * DT), C[1] @ np.linalg.inv(C[0]),
                               rtol=4 / len(ou), atol=1e-10)
    assert ops.L.dims == ("feature_i", "feature_j")
    assert list(ops.label_feature_i.values) == ["x[station=a]", "x[station=b]"]


def test_one_variable_lim_is_the_ar1_model(ou):
    x = ou.sel(station="a")
    model = lim(x, lag=1)
    rho = np.corrcoef(x.values[1:], x.values[:-1])[0, 1]
    L = float(lim_operators(model).L.values.squeeze())
    assert np.exp(L * DT) == pytest.approx(rho, abs=2e-3)   # C(1)/C(0) vs the Pearson rho
    sim = model.generate(20_000, DT, n_members=4, seed=0, progress=False)
    r_sim = np.corrcoef(sim.values[:, 1:].ravel(), sim.values[:, :-1].ravel())[0, 1]
    assert r_sim == pytest.approx(rho, abs=0.01)


def test_lim_operators_needs_a_gaussian_score(ou):
    m, v = ou.values.mean(0), ou.values.var(0)
    model = ou.langevin.fit(score=lambda x: -(x - m) / v, seed=0, progress=False)
    with pytest.raises(DataError, match="Gaussian score"):
        lim_operators(model)


def test_compare_puts_the_baseline_beside_the_model(ou):
    data = ou.isel(time=slice(0, 20_000))
    base = lim(data, seed=0)
    good = base.generate(20_000, DT, n_members=4, seed=1, progress=False)
    # a worse "model": the LIM's ensemble with its second station stretched by 1.5
    bad = good.copy(data=good.values * [1.0, 1.5] + [0.0, -3.0 * (1 - 1.5) - 0.0])
    report = compare(data, bad, baseline={"LIM": good}, n_lags=30)
    alone = compare(data, good, n_lags=30)
    lim_row = report.sel(baseline="LIM")
    np.testing.assert_allclose(lim_row.baseline_acf_rmse, alone.acf_rmse, rtol=1e-12)
    assert float(lim_row.baseline_kl.sel(feature=1)) < float(report.kl.sel(feature=1))
    assert report.baseline_kl.dims == ("baseline", "feature")
    text = format_report(report)
    print(text)
    assert "LIM" in text.splitlines()[-1]


def test_monthly_record_lim_and_report(ou):
    """A datetime axis (months) goes through lim -> generate -> compare with a baseline."""
    months = pd.date_range("1870-01-01", periods=3000, freq="MS")
    data = ou.isel(time=slice(0, 3000)).assign_coords(time=months)
    model = xlangevin.lim(data)
    sim = model.generate(3000, 1, n_members=2, seed=0, progress=False)
    assert np.issubdtype(sim.time.dtype, np.datetime64) and sim.time.values[0] > months[-1]
    report = compare(data, sim, baseline=sim)
    assert report.baseline_kl_mean.item() == pytest.approx(report.attrs["kl_mean"], rel=1e-12)


def test_cdot_auto_keeps_lagged_on_fine_data_and_takes_logm_on_a_smooth_acf(ou):
    """Finely sampled OU: lagged is acceptable and fits C(1..3) -> the same model as
    cdot="lagged". The observed coordinate of a damped oscillator sampled coarsely has a
    smooth ACF (zero slope at 0) that the lagged extrapolation misreads: logm is taken."""
    import json

    x = ou.isel(time=slice(0, 20_000))
    score = xlangevin.score.Gaussian().fit(x)
    auto = x.langevin.fit(score=score, seed=0, progress=False)
    lagged = x.langevin.fit(score=score, cdot="lagged", seed=0, progress=False)
    assert auto.cdot_estimator == "lagged" and auto.attrs["cdot_requested"] == "auto"
    np.testing.assert_array_equal(auto.Phi_std, lagged.Phi_std)

    rng = np.random.default_rng(7)
    A = np.array([[-0.1, -1.0], [1.0, -0.1]])           # a 6-step period, slowly damped
    F = sla.expm(A)
    C = sla.solve_continuous_lyapunov(A, -2 * np.eye(2))
    L = np.linalg.cholesky(C - F @ C @ F.T)
    z = np.zeros(2)
    obs = np.empty(6000)
    for t in range(obs.size):
        z = F @ z + L @ rng.normal(size=2)
        obs[t] = z[0]
    y = xr.DataArray(obs, dims="time", name="y")
    model = y.langevin.fit(score="gaussian", progress=False)
    tried = json.loads(model.attrs["cdot_selection"])
    print(tried)
    assert model.cdot_estimator == "logm"
    assert tried["logm"]["propagator_error"] < tried["lagged"]["propagator_error"]
