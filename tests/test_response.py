"""Linear response from the score (xlangevin.response) and by perturbation ensembles
(xlangevin.perturbation_response): analytic answers and the double well."""

import numpy as np
import pytest
import scipy.linalg as sla
import xarray as xr

import xlangevin as xl
from xlangevin.analysis.stats import lagged_cross_covariance, lagged_cross_sums
from xlangevin.data import DataError

A = np.array([[-1.0, -2.0], [1.0, -0.5]])        # non-normal and rotating: non-reversible


@pytest.fixture(scope="module")
def ou():
    """2-D OU ``dx = A x dt + sqrt(2) dW`` sampled exactly every 0.05 (2*10^5 samples)."""
    C = sla.solve_continuous_lyapunov(A, -2 * np.eye(2))
    dt, n = 0.05, 200_000
    F = sla.expm(A * dt)
    L = np.linalg.cholesky(C - F @ C @ F.T)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(n, 2)) @ L.T
    x = np.empty((n, 2))
    x[0] = rng.multivariate_normal([0, 0], C)
    for t in range(1, n):
        x[t] = F @ x[t - 1] + noise[t]
    da = xr.DataArray(x, dims=("time", "k"), coords={"time": np.arange(n) * dt, "k": [0, 1]},
                      name="x")
    return da, C


def test_lagged_cross_covariance_matches_the_direct_sums():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 2)), rng.normal(size=(500, 3))
    b[:, 0] += np.roll(a[:, 0], 3)
    bounds = np.array([0, 200, 203, 500])           # a sequence shorter than the lags
    ac, bc = a - a.mean(0), b - b.mean(0)
    sums, counts = np.zeros((21, 2, 3)), np.zeros(21)
    for s, e in zip(bounds[:-1], bounds[1:]):
        for k in range(min(21, e - s)):
            sums[k] += ac[s + k:e].T @ bc[s:e - k]
            counts[k] += e - s - k
    for block in (1, 7, 1 << 15):                   # blocks shorter and longer than the lags
        got = lagged_cross_covariance(a, b, bounds, 20, block=block)
        np.testing.assert_allclose(got, sums / counts[:, None, None], atol=1e-14)
    # split into batches by the origin t, in one pass: the batches add up to the whole
    parts, n_parts = lagged_cross_sums(a, b, bounds, 20, [0, 137, 300, 500], block=7)
    np.testing.assert_allclose(parts.sum(0), sums, atol=1e-12)
    np.testing.assert_array_equal(n_parts.sum(0), counts)
    assert n_parts[0, 0] == 137 and n_parts[1, 0] == 163
    with pytest.raises(ValueError, match="no sequence"):
        lagged_cross_covariance(a, b, bounds, 400)


def test_exact_score_gives_the_analytic_mean_response(ou):
    da, C = ou
    R = xl.response(da, score=lambda X: -X @ np.linalg.inv(C), max_lag=40)
    exact = np.stack([sla.expm(A * t) for t in R.lag.values])
    # the Monte-Carlo error of a lagged covariance over 2*10^5 samples with a correlation time
    # of ~1 (20 samples): ~ sqrt(2 * 20 / 2e5) ~ 0.015
    np.testing.assert_allclose(R.response.values, exact, atol=0.04)
    assert R.attrs["stein_deviation"] < 0.02
    assert float(np.max(R.response_stderr)) < 0.04
    np.testing.assert_allclose(R.lag.values[:3], [0, 0.05, 0.1])


def test_quasi_gaussian_is_c_tau_c0_inverse(ou):
    da, _ = ou
    R = xl.response(da, score="gaussian", max_lag=10)
    X = da.values - da.values.mean(0)
    C0 = X.T @ X / len(X)
    for k in (0, 3, 10):
        Ck = X[k:].T @ X[:len(X) - k] / (len(X) - k)
        np.testing.assert_allclose(R.response.values[k], Ck @ np.linalg.inv(C0), atol=1e-10)


def test_quasi_gaussian_errors_match_bartlett_for_an_ar1():
    """AR(1), phi = 0.9, 10^5 samples: the quasi-Gaussian response is r_k ~ phi^k; its
    batch-means error and Bartlett's AR(1) band agree within a factor 2 (ten batches give the
    former to ~25 %), and the estimate lies within four bands of phi^k."""
    rng = np.random.default_rng(0)
    phi, n = 0.9, 100_000
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    R = xl.response(xr.DataArray(x, dims="time", coords={"time": np.arange(n) * 1.0},
                                 name="x"), max_lag=30)
    band = R.response_stderr_ar1.values[1:, 0]
    ratio = R.response_stderr.values[1:, 0, 0] / band
    assert np.all((ratio > 0.5) & (ratio < 2.0))
    assert np.all(np.abs(R.response.values[1:, 0, 0] - phi ** np.arange(1, 31)) < 4 * band)


def test_perturbation_of_a_linear_model_is_its_propagator(ou):
    """With a Gaussian score the model is linear, so the paired kicked members differ by
    exactly ``(I + h A_model)^k`` times the kick: no Monte-Carlo error at all."""
    da, _ = ou
    model = da.langevin.fit(score="gaussian", cdot="logm", seed=0, progress=False)
    P = xl.perturbation_response(model, n_lags=10, dt=0.01, save_every=5, n_members=16, seed=0)
    S = np.diag(model.space.scale)
    C_std = np.cov(model.space.to_standard(da.values).T, bias=True)
    A_model = S @ (-model.Phi_std @ np.linalg.inv(C_std)) @ np.linalg.inv(S)
    exact = np.stack([np.linalg.matrix_power(np.eye(2) + 0.01 * A_model, 5 * k)
                      for k in range(11)])
    np.testing.assert_allclose(P.response.values, exact, atol=1e-12)
    np.testing.assert_allclose(P.lag.values[:2], [0.0, 0.05])


def test_perturbation_of_the_exact_ou_simulator_is_expm():
    """The OU simulator samples exactly, so the paired members differ by expm(A t) times the
    kick (shared noise), whatever the noise: the system path of perturbation_response."""
    B = np.sqrt(2) * np.eye(2)
    P = xl.perturbation_response(xl.systems.ou, n_lags=8, dt=0.1, n_members=8, seed=0,
                                 A=A, B=B)
    exact = np.stack([sla.expm(A * t) for t in P.lag.values])
    np.testing.assert_allclose(P.response.values, exact, atol=1e-10)
    with pytest.raises(ValueError, match="give save_every=1"):
        xl.perturbation_response(xl.systems.ou, n_lags=2, dt=0.1, save_every=5, A=A, B=B)


def test_two_scale_lorenz96_kicks_the_slow_variables_only():
    """The simulator's state is (x, y); the kick and the observables are on x alone, labelled
    like the data layer labels x."""
    P = xl.perturbation_response(xl.systems.lorenz96, n_lags=3, dt=0.0005, save_every=10,
                                 forcing=[1.0, 0.0, 0.0, 0.0], n_members=4, seed=0)
    assert list(P.observable.values) == [f"x[x[k={k}]]" for k in range(4)]
    np.testing.assert_allclose(P.response.values[0, :, 0], [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    assert np.all(np.isfinite(P.response.values)) and P.lag.values[1] == pytest.approx(0.005)


@pytest.fixture(scope="module")
def double_well():
    ds = xl.systems.double_well.simulate(n_samples=200_000, dt=0.001, save_every=50, seed=0,
                                         progress=False)
    return ds.x


def test_double_well_score_response_beats_the_quasi_gaussian(double_well):
    """Odd moments respond to a kick of the symmetric double well; against paired ensembles
    of the simulator the exact-score response errs by ~5 % over 5 time units (2*10^5 samples:
    its batch-means error is about that), the quasi-Gaussian by ~25 %."""
    score = lambda X: X - X**3                      # noqa: E731
    obs = ("x", "x**3")
    R = xl.response(double_well, score=score, observables=obs, max_lag=100)
    G = xl.response(double_well, score="gaussian", observables=obs, max_lag=100)
    P = xl.perturbation_response(xl.systems.double_well, n_lags=100, dt=0.005, save_every=10,
                                 n_members=2000, seed=1, observables=obs)
    for name in obs:
        truth = P.response.sel(observable=f"{name}[x]").values.ravel()
        err = {k: np.abs(v.response.sel(observable=f"{name}[x]").values.ravel() - truth).sum()
               / np.abs(truth).sum() for k, v in (("score", R), ("gaussian", G))}
        print(name, err)
        assert err["score"] < 0.15 and err["gaussian"] > 2 * err["score"]


def test_step_forcing_approaches_the_new_mean(ou):
    """A unit step along e_0 from t = 0: delta<x>(t) = A^-1 (expm(A t) - I) e_0; the sum over
    lags is first order in the lag step (0.05 here: error ~ h |R| / 2 ~ 0.03)."""
    da, C = ou
    R = xl.response(da, score=lambda X: -X @ np.linalg.inv(C), forcing=[1.0, 0.0],
                    max_lag=120)
    out = xl.linear_response.forced_response(R, np.ones(120))
    t = out.time.values
    exact = np.stack([np.linalg.solve(A, sla.expm(A * s) - np.eye(2))[:, 0] for s in t])
    np.testing.assert_allclose(out.values, exact, atol=0.05)
    with pytest.raises(ValueError, match="forcing must be finite"):
        xl.linear_response.forced_response(R, np.ones((10, 3)))


def test_bad_input(ou):
    da, _ = ou
    with pytest.raises(ValueError, match="forcing must be"):
        xl.response(da, forcing=np.ones(3))
    with pytest.raises(ValueError, match="unknown observable"):
        xl.response(da, observables=("x**5",))

    def broken(X):
        raise RuntimeError("boom")

    with pytest.raises(DataError, match="observable 'broken' failed"):
        xl.response(da, observables=(broken,))
    with pytest.raises(ValueError, match="no sequence"):
        xl.response(da, max_lag=10**6)
    with pytest.raises(DataError, match="the score must give finite values"):
        xl.response(da, score=lambda X: np.full(X.shape, np.nan))


def test_callable_forcing_uses_its_divergence(ou):
    """A dilation u(x) = x: B = div u + u . s = 2 - x . C^-1 (x - m) with the quasi-Gaussian
    score; the lag-0 response of (x - m)**2 against the formula evaluated directly (the
    divergence is taken by central differences: ~1e-10 relative)."""
    da, C = ou
    R = xl.response(da, score="gaussian", forcing=lambda X: X, observables=("x**2",), max_lag=0)
    X = da.values
    Xc = X - X.mean(0)
    Cinv = np.linalg.inv(Xc.T @ Xc / len(X))
    B = 2.0 - np.einsum("ni,ij,nj->n", X, Cinv, Xc)
    A2 = Xc**2
    expected = -((A2 - A2.mean(0)) * (B - B.mean())[:, None]).mean(0)
    np.testing.assert_allclose(R.response.values[0, :, 0], expected, rtol=1e-6)
