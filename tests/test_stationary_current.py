"""The density-preserving polynomial current ``v = A(x) s(x) + div A(x)``
(xlangevin.dynamics.stationary_current) and its use by ``EffectiveLangevin``."""

import numpy as np
import pytest
import torch

from xlangevin import EffectiveLangevin, open_model
from xlangevin.data import DataError
from xlangevin.dynamics.stationary_current import PolynomialCurrentField, StationaryCurrent
from xlangevin.score.polynomial import monomial_exponents

J = np.array([[0.0, 1.0], [-1.0, 0.0]])


def _random_field(d=3, degree=2, seed=0):
    rng = np.random.default_rng(seed)
    exponents = np.vstack([np.zeros((1, d), np.int64), monomial_exponents(d, degree, degree)])
    A = rng.normal(size=(len(exponents), d, d))
    P = np.linalg.qr(rng.normal(size=(d, d)))[0] * [1.0, 2.0, 0.5][:d]
    return PolynomialCurrentField(P, exponents, A - A.transpose(0, 2, 1), {})


def test_current_keeps_the_density_invariant():
    """div(p v) = p (div v + v . s) vanishes for any coefficients: checked by autodiff with
    the exact score of a non-Gaussian density, log p = -|x|^4 / 4 - x_1^3 / 3."""
    field = _random_field()
    x = torch.tensor(np.random.default_rng(1).normal(size=(50, 3)), requires_grad=True)

    def score(y):
        return -(y**2).sum(1, keepdim=True) * y - torch.nn.functional.pad(y[:, :1]**2, (0, 2))

    v = field.tensor(x, score(x))
    div = sum(torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(3))
    residual = div + (v * score(x)).sum(1)
    scale = (v.abs() * score(x).abs()).sum(1)
    assert torch.all(residual.abs() <= 1e-10 * (1 + scale))


def _rotating_ou(n=40_000, omega=0.8, dt=0.05, seed=0):
    """``dx = -(I + omega J) x dt + sqrt(2) dW``: density N(0, I), current ``v = omega J s``
    with ``s = -x`` (exact discretization)."""
    import scipy.linalg as sla
    L = -(np.eye(2) + omega * J)
    F = sla.expm(L * dt)
    noise = np.linalg.cholesky(np.eye(2) - F @ F.T)
    rng = np.random.default_rng(seed)
    x = np.empty((n, 2))
    x[0] = rng.normal(size=2)
    for t in range(1, n):
        x[t] = F @ x[t - 1] + noise @ rng.normal(size=2)
    return x


def test_recovers_the_rotation_of_an_ou_process():
    omega, dt = 0.8, 0.05
    X = _rotating_ou(omega=omega, dt=dt)
    bounds = np.array([0, len(X)])
    field = StationaryCurrent(degree=2).fit(X, bounds, dt, lambda y: -y)
    # the constant coefficient carries the rotation, A_0 = omega J; the polynomial ones vanish
    # within the noise of 4*10^4 central differences (~0.02 at this sampling)
    A = field.A.numpy()
    np.testing.assert_allclose(A[0], omega * J, atol=0.05)
    assert np.abs(A[1:]).max() < 0.05
    states = np.random.default_rng(1).normal(size=(100, 2))
    exact = -states @ (omega * J).T
    assert np.linalg.norm(field(states, -states) - exact) < 0.1 * np.linalg.norm(exact)


def test_rotation_constraint_is_met_exactly():
    X = _rotating_ou(n=5000)
    target = np.array([[0.0, -0.5], [0.5, 0.0]])
    field = StationaryCurrent(degree=1).fit(X, np.array([0, len(X)]), 0.05, lambda y: -y,
                                           rotation=target)
    v = field(X, -X)
    moment = v.T @ (X - X.mean(0)) / len(X)
    np.testing.assert_allclose(0.5 * (moment - moment.T), target, atol=1e-10)
    assert field.diagnostics["rotation_constrained"]


def test_default_degree_follows_the_record_length():
    X = _rotating_ou(n=3000)
    fit = StationaryCurrent().fit
    assert fit(X, np.array([0, len(X)]), 0.05, lambda y: -y).diagnostics["degree"] == 2
    Y = np.random.default_rng(0).normal(size=(760, 6))   # 6 delayed features, 760 months
    assert fit(Y, np.array([0, len(Y)]), 1.0, lambda y: -y).diagnostics["degree"] == 1


def test_bad_input():
    with pytest.raises(DataError, match="at least 2 features"):
        StationaryCurrent().fit(np.zeros((100, 1)), np.array([0, 100]), 1.0, lambda y: -y)
    with pytest.raises(DataError, match="give a lower degree"):
        Y = np.random.default_rng(0).normal(size=(60, 4))
        StationaryCurrent(degree=2).fit(Y, np.array([0, 60]), 1.0, lambda y: -y)


def test_langevin_model_with_the_polynomial_current(tmp_path):
    X = _rotating_ou(n=6000, omega=1.5)
    model = EffectiveLangevin(current_velocity="polynomial", n_keep=100, seed=0,
                              progress=False).fit(X, score="gaussian")
    assert model.attrs["drift"] == "Phi_S s(x) + v(x)"
    assert np.allclose(model.Phi_std, model.Phi_std.T)
    # the model's Cdot(0) = Phi_S V + <v x^T> keeps the estimator's antisymmetric part
    xs = model.space.to_standard(X)
    v = model.current(xs, model.score.field(torch.as_tensor(xs)).numpy())
    rotation = v.T @ (xs - xs.mean(0)) / len(xs)
    cdot_a = 0.5 * (model.cdot_std - model.cdot_std.T)
    np.testing.assert_allclose(0.5 * (rotation - rotation.T), cdot_a, atol=1e-8)
    model.to_netcdf(tmp_path / "m.nc")
    back = open_model(tmp_path / "m.nc")
    assert isinstance(back.current, PolynomialCurrentField)
    np.testing.assert_array_equal(back.drift(X[:5]), model.drift(X[:5]))
    run = dict(n_steps=200, dt=0.01, n_members=4, seed=1, progress=False)
    np.testing.assert_array_equal(back.generate(**run), model.generate(**run))
    sim = model.generate(n_steps=40_000, dt=0.02, save_every=5, n_members=8, seed=2,
                         progress=False)
    # invariant density N(0, C): the ensemble's covariance within 10 % of the data's
    np.testing.assert_allclose(np.cov(np.asarray(sim).reshape(-1, 2).T), np.cov(X.T), rtol=0.1,
                               atol=0.05)
