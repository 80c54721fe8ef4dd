"""ScoreModel plumbing against analytic fields, and the plain GMM score."""

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import xlangevin  # noqa: F401  (accessors)
from xlangevin.data import DataError, FeatureSpace
from xlangevin.score import GMM
from xlangevin.score import ScoreModel


class LinearField(nn.Module):
    """s~(x~) = -P x~ (a Gaussian in standardized units)."""

    def __init__(self, P):
        super().__init__()
        self.register_buffer("P", torch.as_tensor(P, dtype=torch.float64))

    def forward(self, x):
        return -x @ self.P.T


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"u": (("time", "x"), rng.normal([1.0, -2.0, 0.5], [2.0, 0.5, 3.0], (400, 3)),
               {"units": "m/s"}),
         "T": (("time",), rng.normal(280.0, 5.0, 400), {"units": "K"})},
        coords={"time": np.arange(400) * 0.25, "x": [0.0, 1.0, 2.0]})


@pytest.fixture
def model(data):
    space = FeatureSpace.fit(data)
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    P = A @ A.T + np.eye(4)
    return ScoreModel(LinearField(P), space, sigma=0.0, method="exact"), P


def test_physical_units_array_tensor_xarray(data, model):
    m, P = model
    space = m.space
    X = space.transform(data, standardize=False)
    S = np.diag(space.scale)
    Sinv = np.linalg.inv(S)
    expected = -(X - space.mean) @ (Sinv @ P @ Sinv).T  # Gaussian precision in physical units
    np.testing.assert_allclose(m(X), expected, rtol=1e-10)
    np.testing.assert_allclose(m(X[3]), expected[3], rtol=1e-10)
    t = torch.as_tensor(X)
    np.testing.assert_allclose(m(t).numpy(), expected, rtol=1e-10)
    out = m(data.isel(time=slice(10, 20)))
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"u", "T"}
    assert out.u.dims == ("time", "x")
    np.testing.assert_array_equal(out.time.values, data.time.values[10:20])
    np.testing.assert_allclose(out.u.values, expected[10:20, :3], rtol=1e-10)
    assert out.u.attrs["units"] == "1/(m/s)"


def test_jacobian_and_divergence(data, model):
    m, P = model
    s = m.space.scale
    J_expected = -P / s[:, None] / s[None, :]
    X = m.space.transform(data, standardize=False)[:5]
    J = m.jacobian(X)
    assert J.shape == (5, 4, 4)
    np.testing.assert_allclose(J, np.broadcast_to(J_expected, J.shape), rtol=1e-10)
    np.testing.assert_allclose(m.divergence(X), np.trace(J_expected), rtol=1e-10)
    hutch = m.divergence(X, n_probes=400, seed=0)
    # Rademacher Hutchinson variance = 2 sum_{i != j} J_ij^2; 400 probes, 5 sigma bound
    sd = np.sqrt(2 * (np.sum(J_expected**2) - np.sum(np.diag(J_expected) ** 2)) / 400)
    np.testing.assert_allclose(hutch, np.trace(J_expected), atol=5 * sd)
    div_xr = m.divergence(data.isel(time=slice(0, 5)))
    assert div_xr.dims == ("time",)
    J_xr = m.jacobian(data.isel(time=slice(0, 2)))
    assert J_xr.dims == ("time", "feature_i", "feature_j")
    assert list(J_xr.label_feature_i.values[:2]) == ["u[x=0.0]", "u[x=1.0]"]


def test_bad_states(model):
    m, _ = model
    with pytest.raises(DataError, match=r"shape \(n, 4\)"):
        m(np.zeros((3, 2)))
    with pytest.raises(DataError, match="non-finite"):
        m(np.full((2, 4), np.nan))


def test_gmm_score_two_centres_exact():
    """With centres +-1 (standardized), s(x) = (tanh(x/sigma^2) - x) / sigma^2."""
    y = np.array([-1.0, 1.0] * 50)  # mean 0, std 1: standardized = physical
    sigma = 0.7
    m = GMM(sigma=sigma).fit(y[:, None])
    x = np.linspace(-2, 2, 41)[:, None]
    np.testing.assert_allclose(m(x)[:, 0], (np.tanh(x[:, 0] / sigma**2) - x[:, 0]) / sigma**2,
                               rtol=1e-9, atol=1e-9)
    # divergence by autodiff = d/dx of the same expression
    d = (1 / np.cosh(x[:, 0] / sigma**2) ** 2 / sigma**2 - 1) / sigma**2
    np.testing.assert_allclose(m.divergence(x), d, rtol=1e-7, atol=1e-9)


def test_gmm_accessor_and_errors(data):
    m = data.u.score.fit(method="gmm", sigma=0.3, max_samples=100, seed=0)
    assert m.method == "gmm" and m.dim == 3
    with pytest.raises(ValueError, match="sigma must be in"):
        data.u.score.fit(method="gmm", sigma=-1.0)
    with pytest.raises(ValueError, match="unknown score method"):
        data.u.score.fit(method="nope")
