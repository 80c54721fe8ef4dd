"""Double well: the stationary law of the simulator is the exact density (METHODS.md §6)."""

import numpy as np
import pytest
import xarray as xr
from scipy import integrate

from xlangevin.analysis import effective_sample_size
from xlangevin.systems import double_well


def ks_distance(samples, density, lo=-4.0, hi=4.0):
    """sup |F_n - F| with F from quadrature of ``density`` on a fine grid."""
    grid = np.linspace(lo, hi, 8001)
    F = integrate.cumulative_trapezoid(density(grid), grid, initial=0.0)
    F /= F[-1]
    s = np.sort(samples)
    Fn = np.arange(1, s.size + 1) / s.size
    Fs = np.interp(s, grid, F)
    return np.max(np.maximum(np.abs(Fn - Fs), np.abs(Fn - 1 / s.size - Fs)))


@pytest.fixture(scope="module")
def run():
    return double_well.simulate(n_samples=200_000, seed=7, progress=False)


def test_density_is_normalized_and_score_is_its_log_gradient():
    assert integrate.quad(double_well.density, -np.inf, np.inf)[0] == pytest.approx(1, abs=1e-9)
    x = np.linspace(-2, 2, 101)
    h = 1e-5
    num = (double_well.log_density_unnormalized(x + h)
           - double_well.log_density_unnormalized(x - h)) / (2 * h)
    np.testing.assert_allclose(double_well.score(x), num, atol=1e-8)


def test_stationary_histogram_matches_exact_density(run):
    x = run.x.values
    n_eff = float(effective_sample_size(x))
    assert n_eff > 2000, "the record must hold enough independent samples for the test"
    # Kolmogorov-Smirnov: 99.9% quantile of sqrt(n) D is 1.95 for independent samples; with
    # correlated samples n is replaced by n_eff. Euler-Maruyama bias at dt = 1e-3 is O(dt).
    tol = 1.95 / np.sqrt(n_eff)
    assert ks_distance(x, double_well.density) < tol
    # the test can fail: the density with the noise off by sqrt(2) is rejected
    wrong = lambda t: np.exp(-((1 - t**2) ** 2) / 2)  # noqa: E731
    assert ks_distance(x, wrong) > tol


def test_attrs_and_coords(run):
    assert run.x.dims == ("time",)
    assert run.attrs["equation"] == double_well.EQUATION
    assert run.attrs["dt"] == 1e-3 and run.attrs["seed"] == "7"
    assert run.attrs["integrator"] == "euler"
    np.testing.assert_allclose(np.diff(run.time.values), 0.1)


def test_ensemble_and_streaming_equal_in_memory(tmp_path):
    kw = dict(n_samples=500, n_members=3, seed=11, progress=False)
    mem = double_well.simulate(**kw)
    path = tmp_path / "dw.nc"
    disk = double_well.simulate(path=path, **kw)
    assert mem.x.dims == ("member", "time")
    xr.testing.assert_identical(disk.load(), mem)
    assert not list(tmp_path.glob("*.part"))  # the temporary file was renamed
    # members are independent streams, not copies
    assert not np.allclose(mem.x[0], mem.x[1])
    # chunking the run does not change the numbers
    again = double_well.simulate(**kw)
    xr.testing.assert_identical(again, mem)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=-1.0), "dt must be"),
    (dict(n_samples=0), "n_samples"),
    (dict(save_every=0), "save_every"),
    (dict(n_members=0), "n_members"),
    (dict(burn_in=-1.0), "burn_in"),
    (dict(scheme="rk4"), "scheme"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        double_well.simulate(progress=False, **{"n_samples": 10, **kwargs})


def test_blow_up_is_reported_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.nc"
    with pytest.raises(FloatingPointError, match="non-finite"):
        double_well.simulate(n_samples=50, dt=1.0, x0=5.0, burn_in=0, progress=False, path=path)
    assert not path.exists() and not list(tmp_path.iterdir())
