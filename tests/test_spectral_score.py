"""Spectral score matching (xlangevin.score.spectral) and the time-dependent score model.

The constants are checked against closed forms: the Hermite product table against the
linearization formula, ``E_{rho_t}[phi] = exp(lambda t) E_{rho_0}[phi]`` against an exactly
simulated Ornstein-Uhlenbeck forward process (Mehler), the order-1 score against the Gaussian
score of the propagated empirical moments (to rounding), the reverse-time samplers against the
data's moments (within standard errors).
"""

import math
import warnings

import numpy as np
import pytest
import xarray as xr

import xlangevin
from xlangevin import open_model
from xlangevin.data import DataError
from xlangevin.score import ScoreModel, SpectralScore, TimeScoreModel
from xlangevin.score.spectral import (SpectralSystem, cluster_basis, cluster_blocks,
                                      needed_ranges)
from xlangevin.score.spectral_basis import Fourier, Hermite, MeanField, union_moments

C = np.array([[1.0, 0.6], [0.6, 2.0]])
MEAN = np.array([1.0, -2.0])


def _gaussian(n, seed=0):
    return np.random.default_rng(seed).multivariate_normal(MEAN, C, size=n)


def _double_well(n, seed):
    """Exact draws of p ∝ exp(-(1 - x^2)^2 / 4) by inverse CDF on a fine grid."""
    g = np.linspace(-4, 4, 40001)
    cdf = np.cumsum(np.exp(-(1 - g**2) ** 2 / 4))
    return np.interp(np.random.default_rng(seed).uniform(size=n), cdf / cdf[-1], g)[:, None]


def _system(family, Y, top, interaction, band=None, total=None):
    d = Y.shape[1]
    size = 2 * top + 1 if family.max_size is None else min(family.max_size, 2 * top + 1)
    P, D = family.tables(top, size)
    blocks = cluster_blocks(d, top, interaction, band, total)
    ranges = needed_ranges(blocks, size, top)
    lam = family.eigenvalues(size)
    rates = {U: sum(np.ix_(*[lam[i] for i in U])) if U else np.zeros(()) for U in ranges}
    return (SpectralSystem(blocks, P, D, union_moments(family, Y, set(ranges), size, ranges),
                           rates, top), cluster_basis(blocks, d))


def _basis_values(family, Y, B, top):
    vals, ders = family.values(Y, top)
    d = Y.shape[1]
    phi = vals[:, np.arange(d), B].prod(-1)
    dphi = []
    for k in range(d):
        v = vals.copy()
        v[:, k] = ders[:, k]
        dphi.append(v[:, np.arange(d), B].prod(-1))
    return phi, np.stack(dphi, -1)


# ----------------------------------------------------------------------------------------------
# the tables and the moment machinery
# ----------------------------------------------------------------------------------------------
def test_hermite_product_table_is_the_linearization_formula():
    """He_m He_n = sum_k C(m,k) C(n,k) k! He_{m+n-2k}, for the normalized h_n = He_n/sqrt(n!)."""
    top = 6
    P, D = Hermite(1).tables(top, 2 * top + 1)
    for m in range(top + 1):
        for n in range(top + 1):
            want = np.zeros(2 * top + 1)
            for k in range(min(m, n) + 1):
                want[m + n - 2 * k] = (math.comb(m, k) * math.comb(n, k) * math.factorial(k)
                                       * math.sqrt(math.factorial(m + n - 2 * k)
                                                   / (math.factorial(m) * math.factorial(n))))
            np.testing.assert_allclose(P[0, m, n], want, atol=1e-10)
        np.testing.assert_allclose(D[0, n], np.sqrt(n) * np.eye(2 * top + 1)[n - 1] * (n > 0),
                                   atol=1e-12)


@pytest.mark.parametrize("family", [Hermite(2, alpha=0.7), Fourier(2)])
def test_products_and_derivatives_expand_exactly(family):
    top = 4
    size = 2 * top + 1
    P, D = family.tables(top, size)
    y = np.random.default_rng(1).uniform(-2, 3, size=(50, 2))
    vals, ders = family.values(y, size - 1)
    for i in range(2):
        v = vals[:, i]
        prod = v[:, :top + 1, None] * v[:, None, :top + 1]
        np.testing.assert_allclose(prod, np.einsum("mnk,sk->smn", P[i], v), atol=1e-9)
        np.testing.assert_allclose(ders[:, i, :top + 1], v @ D[i].T, atol=1e-9)


@pytest.mark.parametrize("case", ["hermite-band", "hermite-total", "fourier"])
def test_gram_and_divergence_at_t0_are_the_empirical_moments(case):
    """G(0) = mean phi_a phi_b and b(0) = mean d_k phi_a over the data, for cluster bases."""
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(2000, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.5], [0, 0, 1.0]])
    family, top, j, band, total = {"hermite-band": (Hermite(3), 3, 2, 1, None),
                                   "hermite-total": (Hermite(3), 3, 3, None, 5),
                                   "fourier": (Fourier(3), 4, 2, None, None)}[case]
    system, B = _system(family, Y, top, j, band, total)
    if band is not None:
        assert not np.any((B[:, 0] > 0) & (B[:, 2] > 0))
    if total is not None:
        assert B.sum(1).max() == total
    phi, dphi = _basis_values(family, Y, B, top)
    np.testing.assert_allclose(system.gram(np.zeros(1))[0], phi.T @ phi / len(Y), atol=1e-12)
    np.testing.assert_allclose(system.divergence(np.zeros(1), 3)[0], dphi.mean(0), atol=1e-12)


def test_moments_follow_the_exact_ou_forward_process():
    """E_{rho_t}[phi_a phi_b] from exp(lambda t) E_{rho_0}[.] equals the Gram matrix of samples
    of the exactly simulated OU process Y_t = e^{-t} Y_0 + sqrt(1 - e^{-2t}) Z (alpha = 1/2),
    within 5 Monte-Carlo standard errors of those samples."""
    rng = np.random.default_rng(3)
    Y0 = np.column_stack([rng.gamma(3.0, size=200_000), rng.normal(size=200_000)])
    Y0 = (Y0 - Y0.mean(0)) / Y0.std(0)
    family = Hermite(2)
    system, B = _system(family, Y0, 2, 2)
    for t in (0.1, 0.5, 2.0):
        Yt = np.exp(-t) * Y0 + np.sqrt(1 - np.exp(-2 * t)) * rng.normal(size=Y0.shape)
        phi, _ = _basis_values(family, Yt, B, 2)
        pair = phi[:, :, None] * phi[:, None, :]
        se = pair.std(0) / np.sqrt(len(Yt))
        G = system.gram(np.array([t]))[0]
        assert np.all(np.abs(G - pair.mean(0)) <= 5 * se + 1e-12)


def test_mean_field_potential_and_eigenfunctions():
    """The max-entropy density has the data's moments; the eigenfunctions are orthonormal under
    it and satisfy the weak eigen-relation <phi_m' phi_n'> = -lambda_n delta_mn."""
    X = _double_well(20_000, 4)
    Y = (X - X.mean(0)) / X.std(0)
    fam = MeanField.fit(Y, moments=4, n_poly=30)
    nodes, w = fam.quadrature(4, 9)
    for j in range(1, 5):
        assert abs(np.sum(w[0] * nodes[0] ** j) - np.mean(Y[:, 0] ** j)) < 1e-6
    vals, ders = fam.values(nodes.T, 29)
    np.testing.assert_allclose(np.einsum("gm,gn,g->mn", vals[:, 0], vals[:, 0], w[0]),
                               np.eye(30), atol=1e-8)
    np.testing.assert_allclose(np.einsum("gm,gn,g->mn", ders[:, 0], ders[:, 0], w[0]),
                               -np.diag(fam.eigenvalues(30)[0]), atol=1e-7)
    assert fam.eigenvalues(30)[0, 0] == 0 and np.all(np.diff(fam.eigenvalues(30)[0]) < 0)


# ----------------------------------------------------------------------------------------------
# the score
# ----------------------------------------------------------------------------------------------
def test_order_one_is_the_gaussian_score_of_the_propagated_moments():
    """With the linear basis the ISM solution is -Sigma_t^{-1} (y - mu_t), mu_t = e^{-t} mu,
    Sigma_t = e^{-2t} C + (1 - e^{-2t}) I of the standardized data, at every grid time: this
    pins the constants (lambda_n = -n, the loss without a factor 2)."""
    X = _gaussian(3000)
    model = SpectralScore(order=1, interaction=1).fit(X)
    m, s = X.mean(0), X.std(0)
    Y = (X - m) / s
    R = np.cov(Y.T, bias=True)
    x = np.array([[0.5, -1.0], [2.0, 0.0], [1.0, -3.0]])
    y = (x - m) / s
    for t in model.times:
        Sig = np.exp(-2 * t) * R + (1 - np.exp(-2 * t)) * np.eye(2)
        want = -np.linalg.solve(Sig, y.T).T / s
        np.testing.assert_allclose(model(t, x), want, rtol=1e-8, atol=1e-10)


def _ou_exact_score(model, x, t):
    """Analytic s(t, x) of the OU forward process on y = (x - m^)/S^ for N(MEAN, C) data."""
    m, s = model.space.mean, model.space.scale
    mu = (MEAN - m) / s
    Cy = C / np.outer(s, s)
    Sig = np.exp(-2 * t) * Cy + (1 - np.exp(-2 * t)) * np.eye(2)
    y = (x - m) / s
    return -np.linalg.solve(Sig, (y - np.exp(-t) * mu).T).T / s


def _relative_error(model, t, n, seed):
    Xt = _gaussian(20_000, seed=99)
    y = (Xt - model.space.mean) / model.space.scale
    xt = model.space.mean + model.space.scale * (np.exp(-t) * y + np.sqrt(1 - np.exp(-2 * t))
                                                 * np.random.default_rng(7).normal(size=y.shape))
    exact = _ou_exact_score(model, xt, t)
    return np.sqrt(np.mean((model(t, xt) - exact) ** 2) / np.mean(exact**2))


def test_ou_gaussian_error_is_monte_carlo_error():
    """Order 3 (full tensor, 16 functions): at every grid time the error against the analytic
    score is Monte-Carlo error, not bias: it shrinks as 1/sqrt(n) (ratio of the RMS errors over
    4 replicates at n and 16 n within [2.5, 6.5], the expected 4), and at 16 n it is below
    the bound 8 sqrt(N_basis / n) of the moment noise."""
    times = None
    rms = {}
    for n in (4000, 64_000):
        errs = []
        for r in range(4):
            model = SpectralScore(order=3, n_times=12).fit(_gaussian(n, seed=10 + r))
            times = model.times
            errs.append([_relative_error(model, t, n, r) for t in times])
        rms[n] = np.sqrt(np.mean(np.square(errs), 0))
    ratio = rms[4000] / rms[64_000]
    early = times < 1.0          # later the score is the stationary one up to tiny moments
    assert np.all((ratio[early] > 2.5) & (ratio[early] < 6.5)), ratio
    assert np.all(rms[64_000] < 8 * np.sqrt(16 / 64_000)), rms[64_000]


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_reverse_samples_reproduce_mean_and_covariance(method):
    """Samples of the reverse-time SDE / probability-flow ODE from N(0, I) have the data's
    mean and covariance within 4 standard errors (of the data and the samples together)."""
    X = _gaussian(20_000)
    model = SpectralScore(order=2).fit(X)
    n = 20_000
    S = model.sample(n, n_steps=100, method=method, seed=1, progress=False, as_array=True)
    Cd = np.cov(X.T)
    se_mean = np.sqrt(np.diag(Cd) * (1 / n + 1 / len(X)))
    assert np.all(np.abs(S.mean(0) - X.mean(0)) < 4 * se_mean)
    se_cov = np.sqrt((Cd**2 + np.outer(np.diag(Cd), np.diag(Cd))) * (1 / n + 1 / len(X)))
    assert np.all(np.abs(np.cov(S.T) - Cd) < 4 * se_cov)


def _kl_marginal(S, cdf, edges):
    h, _ = np.histogram(S, edges)
    q = h / h.sum()
    p = np.diff(cdf(edges))
    p = p / p.sum()
    return float(np.sum(p * np.log(p / np.maximum(q, 1e-12))))


def test_double_well_stationary_score_and_samples():
    """1-D double well, Hermite order 8: s(0, x) within 10 % (density-weighted relative L2) of
    x - x^3; reverse-SDE samples with marginal KL < 0.01 (40 bins; the histogram bias is
    ~0.001)."""
    X = _double_well(20_000, 5)
    model = SpectralScore(order=8).fit(X)
    Xt = _double_well(20_000, 6)
    exact = Xt - Xt**3
    err = np.sqrt(np.mean((model(0.0, Xt) - exact) ** 2) / np.mean(exact**2))
    assert err < 0.10
    g = np.linspace(-4, 4, 40001)
    cdf = np.cumsum(np.exp(-(1 - g**2) ** 2 / 4))
    S = model.sample(20_000, n_steps=200, seed=2, progress=False, as_array=True)[:, 0]
    assert _kl_marginal(S, lambda e: np.interp(e, g, cdf / cdf[-1]), np.linspace(-3, 3, 41)) \
        < 0.01


def test_fourier_basis_on_the_circle():
    """Von Mises data exp(k cos(x - mu)) on [-pi, pi): the order-1 Fourier score is exact
    (-k sin(x - mu)) up to sampling error; samples stay in the box."""
    from scipy.stats import vonmises
    k, mu = 2.0, 0.5
    X = np.mod(vonmises.rvs(k, loc=mu, size=20_000, random_state=1) + np.pi, 2 * np.pi) - np.pi
    model = SpectralScore(basis="fourier", order=1, box=(-np.pi, np.pi)).fit(X[:, None])
    x = np.linspace(-3, 3, 50)[:, None]
    np.testing.assert_allclose(model(0.0, x), -k * np.sin(x - mu), atol=0.1)
    S = model.sample(5000, n_steps=100, seed=0, progress=False, as_array=True)
    assert S.min() >= -np.pi and S.max() <= np.pi
    assert abs(np.angle(np.mean(np.exp(1j * S))) - mu) < 0.05


def test_mean_field_basis_fits_the_double_well():
    X = _double_well(20_000, 7)
    model = SpectralScore(basis="mean-field", order=8, n_poly=30).fit(X)
    Xt = _double_well(20_000, 8)
    exact = Xt - Xt**3
    assert np.sqrt(np.mean((model(0.0, Xt) - exact) ** 2) / np.mean(exact**2)) < 0.15


# ----------------------------------------------------------------------------------------------
# the model: xarray, saving, stationary score, bad input
# ----------------------------------------------------------------------------------------------
def test_xarray_in_and_out_and_save_load(tmp_path):
    X = _gaussian(2000)
    da = xr.DataArray(X, dims=("time", "feature"), coords={"time": np.arange(2000) * 0.5,
                                                           "feature": ["a", "b"]},
                      name="x", attrs={"units": "m"})
    model = SpectralScore(order=2).fit(da)
    out = model(0.3, da.isel(time=slice(0, 10)))
    assert isinstance(out, xr.DataArray) and out.dims == ("time", "feature")
    np.testing.assert_array_equal(out["time"], da["time"][:10])
    assert out.name == "score_x" and out.attrs["method"] == "spectral-hermite"
    S = model.sample(7, n_steps=50, seed=3, progress=False)
    assert isinstance(S, xr.DataArray) and S.sizes == {"time": 7, "feature": 2}
    assert list(S["feature"].values) == ["a", "b"]
    path = model.to_netcdf(tmp_path / "spectral.nc")
    back = open_model(path)
    assert isinstance(back, TimeScoreModel)
    np.testing.assert_array_equal(back(0.3, X[:5]), model(0.3, X[:5]))
    np.testing.assert_array_equal(back.sample(5, n_steps=50, seed=3, progress=False,
                                              as_array=True),
                                  model.sample(5, n_steps=50, seed=3, progress=False,
                                               as_array=True))
    stationary = model.at(0.0)
    assert isinstance(stationary, ScoreModel)
    stationary.to_netcdf(tmp_path / "s0.nc")
    np.testing.assert_array_equal(open_model(tmp_path / "s0.nc")(X[:5]), stationary(X[:5]))
    # the divergence (autodiff of the torch field) matches a central difference
    h = 1e-5
    x0 = X[:1]
    fd = sum((stationary(x0 + h * np.eye(2)[i])[0, i] - stationary(x0 - h * np.eye(2)[i])[0, i])
             / (2 * h) for i in range(2))
    assert abs(float(stationary.divergence(x0)[0]) - fd) < 1e-5


def test_accessor_and_langevin_use_the_stationary_score():
    X = _gaussian(3000)
    da = xr.DataArray(X, dims=("time", "feature"), coords={"time": np.arange(3000) * 0.1})
    sm = da.score.fit(method="spectral", order=2)
    assert isinstance(sm, ScoreModel) and sm.method == "spectral-hermite"
    tm = SpectralScore(order=2).fit(da)
    np.testing.assert_allclose(sm(X[:5]), tm.at(0.0)(X[:5]))
    assert "spectral" in xlangevin.score.SCORE_METHODS


def test_bad_input_errors_and_warnings():
    X = _gaussian(200)
    with pytest.raises(DataError, match="needs periodic data"):
        SpectralScore(basis="fourier").fit(X)
    with pytest.raises(DataError, match="outside the periodic box"):
        SpectralScore(basis="fourier", box=(-1, 1)).fit(X)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError):
        SpectralScore().fit(bad)
    with pytest.warns(UserWarning, match="ill-conditioned"):
        model = SpectralScore(order=12).fit(X[:40])
    assert model.attrs["ridge_used"] > 0 and np.all(np.isfinite(model(0.0, X[:5])))
    with pytest.raises(ValueError, match="moments must be even"):
        SpectralScore(basis="mean-field", moments=3).fit(X)
    with pytest.raises(ValueError, match="basis must be one of"):
        SpectralScore(basis="legendre").fit(X)
    model = SpectralScore(order=1).fit(X)
    with pytest.raises(ValueError, match="t must be in"):
        model.at(-1.0)
    with pytest.raises(ValueError, match="method must be"):
        model.sample(3, method="euler")


def test_fit_is_deterministic_and_fast():
    X = _gaussian(20_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = SpectralScore(order=3, interaction=2).fit(X)
        b = SpectralScore(order=3, interaction=2).fit(X)
    np.testing.assert_array_equal(a.field.coef.numpy(), b.field.coef.numpy())
    assert a.attrs["n_basis"] == 16 and "seed" in a.attrs


# ----------------------------------------------------------------------------------------------
# ISM: the network route
# ----------------------------------------------------------------------------------------------
def test_hutchinson_divergence_is_unbiased_for_the_ism_loss():
    """The Hutchinson loss averaged over many probes equals the exact-divergence loss."""
    import torch
    from xlangevin.score.ism import ISMTimeField
    torch.manual_seed(0)
    field = ISMTimeField(3, (16,))
    y = torch.randn(64, 3, requires_grad=True)
    t = torch.full((64,), 0.3)
    gen = torch.Generator().manual_seed(1)
    exact = float(xlangevin.ISM()._loss(field, t, y, True, gen).detach())
    hutch = float(xlangevin.ISM(n_probes=4000)._loss(field, t, y, False, gen).detach())
    assert abs(exact - hutch) < 0.02 * abs(exact) + 0.01


def test_ism_learns_the_double_well_and_round_trips(tmp_path):
    """30 epochs on 5000 samples: s(0, x) within 35 % of x - x^3 (the network is still
    converging: 13 % after 100 epochs on 10^4, docs/spectral_score.md); seeded; saved."""
    import torch
    torch.set_num_threads(1)
    X = _double_well(5000, 9)
    est = xlangevin.ISM(epochs=30, hidden=(64, 64), batch_size=256, seed=0, progress=False)
    model = est.fit(X)
    Xt = _double_well(5000, 10)
    exact = Xt - Xt**3
    assert np.sqrt(np.mean((model(0.0, Xt) - exact) ** 2) / np.mean(exact**2)) < 0.35
    path = model.to_netcdf(tmp_path / "ism.nc")
    np.testing.assert_allclose(open_model(path)(0.5, Xt[:5]), model(0.5, Xt[:5]), rtol=1e-6)
    again = xlangevin.ISM(epochs=1, hidden=(8,), seed=3, progress=False).fit(X[:500])
    same = xlangevin.ISM(epochs=1, hidden=(8,), seed=3, progress=False).fit(X[:500])
    np.testing.assert_array_equal(again(0.2, Xt[:5]), same(0.2, Xt[:5]))
    assert isinstance(xr.DataArray(X[:, 0], dims="time").score.fit(
        method="ism", epochs=1, hidden=(8,), seed=0, progress=False), ScoreModel)


# ----------------------------------------------------------------------------------------------
# Ginzburg-Landau chain (the high-dimensional example)
# ----------------------------------------------------------------------------------------------
def test_ginzburg_landau_score_and_sampler():
    """The score is -beta grad V (central differences); MALA samples satisfy the Stein
    identity E[s(x) x^T] = -I within 5 standard errors."""
    from xlangevin.systems import ginzburg_landau as gl
    x = np.random.default_rng(0).normal(size=(3, 5))
    h = 1e-6
    fd = np.stack([-(gl.potential(x + h * e, 0.05) - gl.potential(x - h * e, 0.05)) / (2 * h)
                   for e in np.eye(5)], 1)
    np.testing.assert_allclose(gl.score(x, lam=0.05, beta=1.0), fd, rtol=1e-5, atol=1e-4)
    ds = gl.simulate(4000, d=5, lam=0.1, beta=0.5, n_chains=400, burn=500, thin=10, seed=1)
    assert ds.x.dims == ("time", "site") and ds.sizes["time"] == 4000
    assert 0.5 < ds.attrs["acceptance"] < 1.0
    X = ds.x.values
    terms = gl.score(X, 0.1, 0.5)[:, :, None] * X[:, None, :]
    se = terms.std(0) / np.sqrt(len(X))
    assert np.all(np.abs(terms.mean(0) + np.eye(5)) < 5 * se + 0.02)
