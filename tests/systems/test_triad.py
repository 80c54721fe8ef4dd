"""Reduced triad (CAM noise): the simulated stationary law is the density of the exact score.

This also pins the sign convention of METHODS.md §6: the drift constant is -A B / 2.
"""

import numpy as np
import pytest
import xarray as xr
from scipy import integrate

from xlangevin.analysis import effective_sample_size
from xlangevin.systems import triad

P = triad.DEFAULTS


def ks_distance(samples, cdf):
    """sup |F_n - F| for an exact CDF callable."""
    s = np.sort(np.ravel(samples))
    Fn = np.arange(1, s.size + 1) / s.size
    Fs = cdf(s)
    return np.max(np.maximum(np.abs(Fn - Fs), np.abs(Fn - 1 / s.size - Fs)))


def cdf_from_score(score_fn, lo=-3.0, hi=8.0, n=220_001):
    grid = np.linspace(lo, hi, n)
    logp = integrate.cumulative_simpson(score_fn(grid), x=grid, initial=0.0)
    p = np.exp(logp - logp.max())
    F = integrate.cumulative_simpson(p, x=grid, initial=0.0)
    return lambda x: np.interp(x, grid, F / F[-1])


def wrong_sign_score(x):
    """Score of the stationary density if the drift constant were +A B/2 (KGMM paper text)."""
    a, b, c, A, B, s1 = (P[k] for k in ("a", "b", "c", "A", "B", "sigma1"))
    return 2 * (3 * A * B / 2 + (a - B**2) * x + b * x**2 - c * x**3) / (s1**2 + (A - B * x)**2)


@pytest.fixture(scope="module")
def run():
    # 4 members x 2500 time units at dt = 1e-3 (1e7 EM steps, ~1 s)
    return triad.simulate(n_samples=250_000, n_members=4, seed=3, progress=False)


def test_score_is_the_fokker_planck_solution():
    # s = (2 f - (g^2)') / g^2 with (g^2)' by central differences: checks the algebra in the
    # module docstring, including the -A B/2 constant of the drift
    x = np.linspace(-0.5, 2.0, 251)
    h = 1e-6
    dg2 = (triad.diffusion(x + h) - triad.diffusion(x - h)) / (2 * h)
    fp = (2 * triad.drift(x) - dg2) / triad.diffusion(x)
    np.testing.assert_allclose(triad.score(x), fp, rtol=1e-6, atol=1e-6)
    # the tabulated density is normalized and its log-gradient is the score
    grid = np.linspace(-3, 8, 200_001)
    assert integrate.simpson(triad.density(grid), x=grid) == pytest.approx(1, abs=1e-8)
    xs = np.linspace(-0.3, 1.5, 37)
    num = (triad.log_density(xs + 1e-4) - triad.log_density(xs - 1e-4)) / 2e-4
    np.testing.assert_allclose(num, triad.score(xs), rtol=1e-4, atol=1e-3)
    assert triad.cdf(-3.0) == 0 and triad.cdf(8.0) == pytest.approx(1, abs=1e-12)


def test_drift_and_score_accept_parameters():
    x = np.array([[0.1], [0.3]])
    assert triad.drift(x).shape == (2, 1)
    p = dict(a=-1.0, b=0.0, c=1.0, A=0.0, B=0.0, sigma1=1.0)  # plain cubic, additive noise
    np.testing.assert_allclose(triad.score(x, **p), 2 * (-x - x**3))


def test_stationary_histogram_matches_density_of_exact_score(run):
    x = run.x.values
    assert run.x.dims == ("member", "time")
    # members are independent: the effective sample sizes add (measured: ~2400 per member, tau
    # ~1 time unit, i.e. ~1e4 in all)
    n_eff = float(np.sum(effective_sample_size(x, axis=1)))
    assert n_eff > 5000, "the record must hold enough independent samples for the test"
    # KS: the 99.9% quantile of sqrt(n) D is 1.95 for independent samples; correlated samples
    # count as n_eff. Euler–Maruyama's O(dt) bias at dt = 1e-3 is far below this.
    # Measured: D = 0.005 against tol = 0.019.
    tol = 1.95 / np.sqrt(n_eff)
    d_true = ks_distance(x, triad.cdf)
    print(f"triad: n_eff={n_eff:.0f} KS={d_true:.4f} tol={tol:.4f}")
    assert d_true < tol, (d_true, tol)
    # the test can fail: the density with the +A B/2 drift constant is rejected (measured 0.25)
    d_wrong = ks_distance(x, cdf_from_score(wrong_sign_score))
    print(f"triad: KS against the +A B/2 density = {d_wrong:.3f}")
    assert d_wrong > 5 * tol, (d_wrong, tol)
    # exact mean from quadrature vs sample mean (SE from n_eff; 5 SE)
    grid = np.linspace(-3, 8, 220_001)
    p = triad.density(grid)
    mean = integrate.simpson(grid * p, x=grid)
    std = np.sqrt(integrate.simpson((grid - mean) ** 2 * p, x=grid))
    assert abs(x.mean() - mean) < 5 * std / np.sqrt(n_eff)


def test_attrs_record_equation_parameters_and_integrator(run):
    a = run.attrs
    assert a["equation"] == triad.EQUATION and "-A B/2" in a["equation"]
    for k, v in P.items():
        assert a[f"param_{k}"] == v
    assert a["dt"] == 1e-3 and a["save_every"] == 10 and a["integrator"] == "euler"
    assert a["seed"] == "3"
    np.testing.assert_allclose(np.diff(run.time.values), 0.01)


def test_parameters_override_and_reproducible():
    kw = dict(n_samples=300, seed=5, progress=False)
    base = triad.simulate(**kw)
    xr.testing.assert_identical(base, triad.simulate(**kw))
    other = triad.simulate(**kw, sigma1=0.2)
    assert other.attrs["param_sigma1"] == 0.2
    assert not np.allclose(base.x, other.x)
    assert base.x.dims == ("time",)


def test_streaming_equals_in_memory(tmp_path):
    kw = dict(n_samples=400, n_members=2, seed=9, progress=False)
    mem = triad.simulate(**kw)
    disk = triad.simulate(path=tmp_path / "triad.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=-1e-3), "dt must be"),
    (dict(n_samples=0), "n_samples"),
    (dict(scheme="heun"), "multiplicative"),
    (dict(c=0.0), "c must be > 0"),
    (dict(sigma=1.0), "unknown triad parameter"),
    (dict(n_members=2, x0=[0.0, 0.1, 0.2]), "x0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        triad.simulate(progress=False, **{"n_samples": 10, **kwargs})
