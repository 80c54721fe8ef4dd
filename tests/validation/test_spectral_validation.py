"""Acceptance checks of spectral score matching at full size (issue 21; docs/spectral_score.md).

* OU forward process, Gaussian data (10^5 samples): at every grid time the spectral score is
  within the Monte-Carlo bound of the analytic one; reverse-time samples reproduce mean and
  covariance within 4 standard errors.
* 1-D double well and a 2-D Gaussian mixture: stationary score within 10 % (density-weighted
  relative L2) and generated marginals with KL < 0.01, for the SDE and the ODE sampler.
"""

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from xlangevin.score import SpectralScore

pytestmark = pytest.mark.slow

C = np.array([[1.0, 0.6], [0.6, 2.0]])
MEAN = np.array([1.0, -2.0])
MIX_MEANS = [np.array([-0.6, 0.0]), np.array([0.6, 0.3])]
MIX_COVS = [np.array([[0.5, 0.2], [0.2, 0.6]]), np.array([[0.6, -0.1], [-0.1, 0.4]])]


def _mixture(n, seed):
    rng = np.random.default_rng(seed)
    pick = rng.uniform(size=n) < 0.5
    return np.where(pick[:, None], rng.multivariate_normal(MIX_MEANS[0], MIX_COVS[0], n),
                    rng.multivariate_normal(MIX_MEANS[1], MIX_COVS[1], n))


def _mixture_score(x):
    dens = [0.5 * multivariate_normal(m, c).pdf(x) for m, c in zip(MIX_MEANS, MIX_COVS)]
    grads = [-np.linalg.solve(c, (x - m).T).T for m, c in zip(MIX_MEANS, MIX_COVS)]
    return (dens[0][:, None] * grads[0] + dens[1][:, None] * grads[1]) / (dens[0]
                                                                             + dens[1])[:, None]


def _mixture_cdf(edges, i):
    return sum(0.5 * norm.cdf(edges, m[i], np.sqrt(c[i, i])) for m, c in zip(MIX_MEANS,
                                                                           MIX_COVS))


def _kl(samples, cdf_edges, edges):
    h, _ = np.histogram(samples, edges)
    q = h / h.sum()
    p = np.diff(cdf_edges)
    p = p / p.sum()
    return float(np.sum(p * np.log(p / np.maximum(q, 1e-12))))


def _rel(est, exact):
    return float(np.sqrt(np.mean(np.sum((est - exact) ** 2, -1))
                         / np.mean(np.sum(exact**2, -1))))


def test_ou_gaussian_score_within_monte_carlo_bound_at_every_time():
    """Bound: the relative error of a least-squares fit of N_basis coefficients per component
    from n samples is ~ sqrt(N_basis / n) (moment noise); we require <= 4 sqrt(N_basis / n) at
    every one of the 64 grid times (order 3, full tensor: N_basis = 16)."""
    n = 100_000
    X = np.random.default_rng(0).multivariate_normal(MEAN, C, size=n)
    model = SpectralScore(order=3).fit(X)
    m, s = model.space.mean, model.space.scale
    mu, Cy = (MEAN - m) / s, C / np.outer(s, s)
    rng = np.random.default_rng(1)
    Y0 = rng.multivariate_normal(mu, Cy, size=20_000)
    bound = 4 * np.sqrt(16 / n)
    for t in model.times:
        Yt = np.exp(-t) * Y0 + np.sqrt(1 - np.exp(-2 * t)) * rng.normal(size=Y0.shape)
        Sig = np.exp(-2 * t) * Cy + (1 - np.exp(-2 * t)) * np.eye(2)
        exact = -np.linalg.solve(Sig, (Yt - np.exp(-t) * mu).T).T / s
        err = _rel(model(t, m + s * Yt), exact)
        assert err <= bound, (t, err, bound)


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_ou_gaussian_reverse_samples_mean_and_covariance(method):
    n = 100_000
    X = np.random.default_rng(2).multivariate_normal(MEAN, C, size=n)
    model = SpectralScore(order=2).fit(X)
    S = model.sample(n, n_steps=200, method=method, seed=3, progress=False, as_array=True)
    Cd = np.cov(X.T)
    se = np.sqrt(np.diag(Cd) * 2 / n)
    assert np.all(np.abs(S.mean(0) - X.mean(0)) < 4 * se)
    se_cov = np.sqrt((Cd**2 + np.outer(np.diag(Cd), np.diag(Cd))) * 2 / n)
    assert np.all(np.abs(np.cov(S.T) - Cd) < 4 * se_cov)


def _double_well(n, seed):
    g = np.linspace(-4, 4, 40001)
    cdf = np.cumsum(np.exp(-(1 - g**2) ** 2 / 4))
    return np.interp(np.random.default_rng(seed).uniform(size=n), cdf / cdf[-1], g)[:, None], \
        (lambda e: np.interp(e, g, cdf / cdf[-1]))


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_double_well(method):
    X, cdf = _double_well(100_000, 4)
    model = SpectralScore(order=8).fit(X)
    Xt, _ = _double_well(50_000, 5)
    assert _rel(model(0.0, Xt), Xt - Xt**3) < 0.10
    S = model.sample(50_000, n_steps=200, method=method, seed=6, progress=False,
                     as_array=True)[:, 0]
    edges = np.linspace(-3, 3, 41)
    assert _kl(S, cdf(edges), edges) < 0.01


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_gaussian_mixture_2d(method):
    X = _mixture(100_000, 7)
    model = SpectralScore(order=6, total_order=6).fit(X)
    Xt = _mixture(50_000, 8)
    assert _rel(model(0.0, Xt), _mixture_score(Xt)) < 0.10
    S = model.sample(50_000, n_steps=200, method=method, seed=9, progress=False,
                     as_array=True)
    edges = np.linspace(-4, 4, 41)
    for i in range(2):
        assert _kl(S[:, i], _mixture_cdf(edges, i), edges) < 0.01


@pytest.mark.parametrize("regime", ["strong", "weak"])
def test_ginzburg_landau_spectral_no_worse_than_dsm(regime):
    """d = 8, 2x10^4 MALA samples: the Hermite cluster basis (order 4, pairs within band 2,
    241 functions) has a smaller score error at t = 0 than DSM (sigma = 0.1, 60 epochs) on the
    same samples (measured 0.136 vs 0.253 strong, 0.133 vs 0.508 weak; the slides' 0.05-0.07
    is not reached at this size, docs/spectral_score.md)."""
    import torch

    from xlangevin import DSM
    from xlangevin.systems import ginzburg_landau as gl
    torch.set_num_threads(1)
    p = gl.REGIMES[regime]
    X = gl.simulate(20_000, d=8, seed=0, **p).x.values
    Xt = gl.simulate(10_000, d=8, seed=1, **p).x.values
    exact = gl.score(Xt, **p)
    spectral = SpectralScore(order=4, interaction=2, band=2).fit(X)
    dsm = DSM(sigma=0.1, epochs=60, device="cpu", seed=0, progress=False).fit(X)
    err_spectral, err_dsm = _rel(spectral(0.0, Xt), exact), _rel(dsm(Xt), exact)
    assert err_spectral < 0.2 and err_spectral <= err_dsm, (err_spectral, err_dsm)


def test_digits_generated_accuracy_within_ten_points(tmp_path, monkeypatch):
    """docs/spectral_digits.py: class-wise spectral scores on 10 PCA dims of load_digits; the
    classifier's accuracy on the decoded samples is within 10 points of that on real held-out
    digits (measured 0.903 vs 0.961)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "docs" / "spectral_digits.py"
    spec = importlib.util.spec_from_file_location("spectral_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    real, _, generated = module.main(per_class=100)
    assert generated > real - 0.10
    assert (tmp_path / "spectral_digits.png").exists()
