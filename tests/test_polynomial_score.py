"""The polynomial log-density score fitted by implicit score matching (xlangevin.score.Polynomial).

The family contains the Gaussian (degree 2) and the quartic potentials of the KGMM paper, so on
their samples the fit is exact up to Monte-Carlo error; the checks below hold to tolerances set
by that error (about ``1 / sqrt(n)`` relative) or to rounding where the answer is algebraic.
"""

import numpy as np
import pytest
import torch

from xlangevin import open_model
from xlangevin.data import DataError
from xlangevin.score import Gaussian, Polynomial
from xlangevin.score.polynomial import (decays_outward, log_density, monomial_exponents,
                                        polynomial_basis)
from xlangevin.score.select import score_matching_loss
from xlangevin.testing import sample_density_1d, weighted_relative_error

QUARTIC = (lambda x: x**3 - x + 0.3, lambda x: np.exp(-(x**4 / 4 - x**2 / 2 + 0.3 * x)))


def test_monomials_respect_the_cross_degree():
    e = monomial_exponents(3, 4, 2)
    assert e.shape[1] == 3 and e.sum(1).min() == 1 and e.sum(1).max() == 4
    mixed = (e > 0).sum(1) > 1
    assert e[mixed].sum(1).max() == 2                       # x y, x z, y z only
    assert len(monomial_exponents(3, 4, 4)) == 34           # C(3 + 4, 4) - 1
    assert monomial_exponents(2, 0, 0).shape == (0, 2)


def test_tilted_quartic_recovered_to_monte_carlo_error():
    grad_v, density = QUARTIC
    y = sample_density_1d(density, 20_000, -4, 4, np.random.default_rng(0))
    model = Polynomial().fit(3.0 * y[:, None] + 1.0)          # physical units: scale 3, shift 1
    g = np.linspace(-2, 2, 401)
    err = weighted_relative_error(3.0 * model(3.0 * g[:, None] + 1.0).ravel(), -grad_v(g),
                                  density(g))
    # n = 10^4 gave 0.02-0.04 over three draws; the error falls like n^-1/2
    assert err < 0.04
    assert model.attrs["degree_used"] == 4 and model.attrs["top_coefficient_floor"] == 0.0


def test_degree_two_is_the_gaussian_score():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0, 0, 2.0]])
    np.testing.assert_allclose(Polynomial(degree=2, ridge=0.0).fit(X)(X[:50]),
                               Gaussian().fit(X)(X[:50]), rtol=1e-7, atol=1e-9)


def test_score_is_the_gradient_of_the_fitted_log_density():
    """The field's score equals the finite-difference gradient of theta . psi(Q x~), also for
    the mixed basis u = (z, x~) of more than four features."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 6)) / 3
    X = x + 0.2 * (x**2 - 1)                                  # skewed, correlated
    model = Polynomial().fit(X)
    field = model.field
    assert field.Q.shape == (12, 6)                           # u = (z, x~)
    Q, theta = field.Q.numpy(), field.theta.numpy()
    exponents = field.exponents.numpy()
    xs = model.space.to_standard(X[:20])
    h = 1e-6
    numeric = np.stack([(log_density(theta, exponents, (xs + h * e) @ Q.T)
                         - log_density(theta, exponents, (xs - h * e) @ Q.T)) / (2 * h)
                        for e in np.eye(6)], axis=1)
    analytic = field(torch.as_tensor(xs)).numpy()
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


def test_skewed_stations_beat_the_gaussian_on_held_out_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12_000, 8)) @ (np.eye(8) + 0.4 * rng.normal(size=(8, 8))) / 2
    x /= x.std(0)
    X = x + 0.15 * (x**2 - 1)                                 # each feature skewed (~0.9)
    train, test = X[:9000], X[9000:]
    poly, gauss = Polynomial().fit(train), Gaussian().fit(train)
    xs = poly.space.to_standard(test)
    gain = score_matching_loss(gauss, xs) - score_matching_loss(poly, xs)
    # the score-matching loss is E|s - grad log p|^2 / 2 + const: a lower held-out loss is a
    # better score; demand a gain of five standard errors
    assert gain.mean() > 5 * gain.std() / np.sqrt(len(gain))


def test_fitted_density_decays_outside_the_data():
    """Gaussian data: the free quartic has top coefficients of either sign; the fit holds them
    negative and the density decays along every ray beyond the data."""
    X = np.random.default_rng(4).normal(size=(2000, 2))
    model = Polynomial().fit(X)
    field = model.field
    # rays of the standardized state x~ (u = Q x~)
    assert decays_outward(field.theta.numpy(), field.exponents.numpy(), field.Q.numpy(), r0=3.0)
    rays = np.random.default_rng(0).normal(size=(200, 2))
    far = 8.0 * rays / np.linalg.norm(rays, axis=1, keepdims=True)
    s = model(model.space.to_physical(far))
    assert np.all(np.sum(s * far, axis=1) < 0)                 # the score points inwards


def test_basis_of_many_features_adds_pure_powers_of_each_feature():
    P = np.linalg.cholesky(np.linalg.inv(np.eye(5) + 0.3)).T
    T, e = polynomial_basis(P, 4, 2)
    np.testing.assert_allclose(T[5:] @ P, np.eye(5), atol=1e-12)   # u = (z, x~)
    pure_x = e[:, 5:]
    assert set(pure_x.sum(1)) == {0, 3, 4} and np.all((pure_x > 0).sum(1) <= 1)
    assert np.all(e[pure_x.sum(1) > 0, :5] == 0)               # no monomial mixes z and x~


def test_bad_input():
    with pytest.raises(ValueError, match="degree must be even"):
        Polynomial(degree=3).fit(np.random.default_rng(0).normal(size=(100, 1)))
    with pytest.raises(DataError, match="no polynomial log-density"):
        Polynomial().fit(np.random.default_rng(0).normal(size=(6, 3)))


def test_saved_and_loaded(tmp_path):
    X = np.random.default_rng(5).normal(size=(1500, 3))
    model = Polynomial().fit(X + 0.2 * X**2)
    model.to_netcdf(tmp_path / "p.nc")
    back = open_model(tmp_path / "p.nc")
    np.testing.assert_array_equal(back(X[:10]), model(X[:10]))
    assert back.attrs["degree_used"] == model.attrs["degree_used"]
