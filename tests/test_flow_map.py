"""Quick tests of the flow-map estimator, its model and the physical-measure report.

Tiny budgets only (1000 samples, a few epochs, 16-wide nets); the Lorenz-63 reproduction of the
MSE vs Jacobian-matching table is tests/validation/test_lyapunov_validation.py.
"""

import numpy as np
import pytest
import xarray as xr

import xlangevin as xl
from xlangevin.data import DataError
from xlangevin.systems import lorenz63
from xlangevin.tangent import (FlowMap, FlowMapModel, physical_measure_report,
                               simulator_flow_map, sliced_wasserstein1)

DT = 0.01


@pytest.fixture(scope="module")
def l63():
    return lorenz63.simulate(n_samples=1000, noise=0.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def true_map():
    return simulator_flow_map(lorenz63, DT, n_sub=10)


@pytest.fixture(scope="module")
def tiny(l63, true_map):
    kw = dict(hidden=(16, 16), epochs=3, seed=0)
    return (FlowMap(**kw).fit(l63),
            FlowMap(loss="jacobian", network="resnet", **kw).fit(l63, jacobian=true_map[1]))


def _states(ds):
    return np.stack([ds.x.values, ds.y.values, ds.z.values], 1)


def _fd(f, X, h=1e-6):
    return np.stack([(f(X + h * e) - f(X - h * e)) / (2 * h) for e in np.eye(X.shape[1])], 2)


def test_simulator_flow_map(l63, true_map):
    """RK4 (10 x 1e-3) vs the data's Heun (10 x 1e-3): both second order or better, ~1e-4 apart
    over one step; the Jacobian equals central differences of the map."""
    F, DF = true_map
    X = _states(l63)
    np.testing.assert_allclose(F(X[:-1]), X[1:], atol=1e-3)
    np.testing.assert_allclose(DF(X[:5]), _fd(F, X[:5]), atol=1e-6)


def test_fit_step_and_autodiff_jacobian(l63, tiny):
    X = _states(l63)[:7]
    for model in tiny:
        assert isinstance(model, FlowMapModel) and model.dt == pytest.approx(DT)
        assert model.step(X).shape == (7, 3)
        np.testing.assert_allclose(model.step_jacobian(X), _fd(model.step, X), atol=1e-6)
        np.testing.assert_allclose(model.orbit(X[0], 2)[0], model.step(X[:1])[0])
    mse, jac = tiny
    assert mse.attrs["loss"] == "mse" and jac.attrs["loss"] == "jacobian"
    assert "ResNet" in repr(jac)


def test_save_load_round_trip(tmp_path, l63, tiny):
    X = _states(l63)[:20]
    for i, model in enumerate(tiny):
        loaded = xl.open_model(model.to_netcdf(tmp_path / f"map{i}.nc"))
        assert isinstance(loaded, FlowMapModel)
        np.testing.assert_array_equal(loaded.step(X), model.step(X))
        assert loaded.attrs["loss"] == model.attrs["loss"]


def test_generate_is_xarray_like_the_data(tiny):
    out = tiny[0].generate(50, n_members=2, seed=1)
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"x", "y", "z"}
    assert out.x.dims == ("member", "time") and out.sizes["time"] == 50
    again = tiny[0].generate(50, n_members=2, seed=1)
    xr.testing.assert_identical(out, again)


@pytest.mark.filterwarnings("ignore:the leading exponent")
def test_map_spectrum_sum_is_mean_log_det(tiny):
    """QR identity: sum of exponents = mean log |det DF| / dt along the same orbit."""
    model = tiny[0]
    x0 = model.default_state()
    ds = model.lyapunov(t_total=2.0, burn_in=0.0, qr_interval=DT, x0=x0, vectors=True,
                        n_batches=5)
    before = np.vstack([x0[None], ds.states.values[:-1]])
    logdet = np.log(np.abs(np.linalg.det(model.step_jacobian(before))))
    assert float(ds.exponent_sum) == pytest.approx(logdet.mean() / DT, rel=1e-9)
    assert ds.attrs["integrator"] == "map" and ds.sizes["exponent"] == 3


def test_sliced_wasserstein_analytic():
    X = np.random.default_rng(0).standard_normal((2000, 2))
    assert sliced_wasserstein1(X, X) == 0.0
    c = np.array([0.3, 0.0])  # W1 of a shift along u is |u . c|: mean 0.3 * 2/pi (MC se 1.5 %)
    assert sliced_wasserstein1(X, X + c, n_directions=1000) == pytest.approx(0.6 / np.pi,
                                                                            rel=0.06)


def test_physical_measure_report(l63, tiny):
    rep = physical_measure_report(tiny[1], l63, n_steps=300,
                                  reference_exponents=[0.906, 0.0, -14.572],
                                  lyapunov_options={"t_total": 1.0, "n_batches": 5})
    assert rep.w1.dims == ("feature",) and np.all(rep.w1 >= 0)
    assert list(rep.variable.values) == ["x", "y", "z"]
    assert float(rep.sliced_w1) >= 0
    assert rep.exponents_relative_error.sizes["exponent"] == 3
    np.testing.assert_allclose(rep.mean_data, _states(l63).mean(0))


def test_bad_inputs(l63, true_map):
    with pytest.raises(ValueError, match="needs fit"):
        FlowMap(loss="jacobian", epochs=1).fit(l63)
    with pytest.raises(ValueError, match="square"):
        FlowMap(loss="jacobian", epochs=1).fit(l63, jacobian=lambda X: np.ones((len(X), 3, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        FlowMap(loss="jacobian", epochs=1).fit(l63, jacobian=lambda X: np.full((len(X), 3, 3),
                                                                                np.inf))
    with pytest.raises(ValueError, match="network"):
        FlowMap(network="cnn").fit(l63)
    with pytest.raises(DataError, match="at least 3"):
        FlowMap(epochs=1).fit(l63[["x"]].isel(time=slice(0, 2)))
