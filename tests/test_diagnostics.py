"""ACF and effective sample size against an AR(1) process with known answers."""

import numpy as np
import pytest

from xlangevin.analysis import acf, effective_sample_size, integrated_autocorrelation_time


def ar1(phi, n, seed=0, cols=1):
    rng = np.random.default_rng(seed)
    x = np.empty((n, cols))
    x[0] = rng.normal(size=cols) / np.sqrt(1 - phi**2)
    eps = rng.normal(size=(n, cols))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + eps[t]
    return x


def test_acf_matches_direct_sum():
    x = np.random.default_rng(3).normal(size=(257, 2))
    r = acf(x, max_lag=10)
    y = x - x.mean(0)
    direct = np.array([(y[: len(y) - k] * y[k:]).sum(0) for k in range(11)]) / (y**2).sum(0)
    np.testing.assert_allclose(r, direct, rtol=1e-12, atol=1e-14)


def test_ar1_acf_and_integrated_time():
    phi = 0.9
    x = ar1(phi, 200_000, cols=2)
    r = acf(x, max_lag=5)
    # standard error of rho(k) ~ sqrt(tau / n) ~ 0.01 here; 0.03 is 3 sigma
    np.testing.assert_allclose(r[:, 0], phi ** np.arange(6), atol=0.03)
    tau = integrated_autocorrelation_time(x)
    exact = (1 + phi) / (1 - phi)  # = 19
    np.testing.assert_allclose(tau, exact, rtol=0.1)
    np.testing.assert_allclose(effective_sample_size(x), 200_000 / tau)


def test_bad_lag():
    with pytest.raises(ValueError, match="max_lag"):
        acf(np.zeros(5), max_lag=7)
