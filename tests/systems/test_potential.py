"""2-D asymmetric potential: exp(-U) is the invariant density for C = 0 and for C = 0.8."""

import numpy as np
import pytest
import xarray as xr
from scipy import integrate

from xlangevin.analysis import effective_sample_size
from xlangevin.systems import potential


def ks_distance(samples, cdf):
    s = np.sort(np.ravel(samples))
    Fn = np.arange(1, s.size + 1) / s.size
    Fs = cdf(s)
    return np.max(np.maximum(np.abs(Fn - Fs), np.abs(Fn - 1 / s.size - Fs)))


def cdf_of(logp, lo=-4.0, hi=4.0):
    grid = np.linspace(lo, hi, 80_001)
    F = integrate.cumulative_simpson(np.exp(logp(grid)), x=grid, initial=0.0)
    return lambda x: np.interp(x, grid, F / F[-1])


A, B = np.array(potential.A_DEFAULT), np.array(potential.B_DEFAULT)


@pytest.fixture(scope="module", params=[0.0, 0.8], ids=["C=0", "C=0.8"])
def run(request):
    # 4 members x 2000 time units (dt 1e-3, Heun): ~8e6 steps per C
    return potential.simulate(n_samples=200_000, n_members=4, seed=21, C=request.param,
                              progress=False)


def test_exact_functions():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, (50, 2))
    h = 1e-6
    num = np.stack([(potential.potential(x + h * e) - potential.potential(x - h * e)) / (2 * h)
                    for e in np.eye(2)], -1)
    np.testing.assert_allclose(potential.score(x), -num, atol=1e-6)
    np.testing.assert_allclose(potential.drift(x, C=0.8),
                               -potential.grad_potential(x) @ potential.true_phi(0.8).T)
    np.testing.assert_allclose(potential.true_phi(0.8), [[1, -0.8], [0.8, 1]])
    np.testing.assert_allclose(potential.true_sigma(), np.eye(2))
    # marginals normalized; the joint density is their product and normalized (2-D quadrature)
    for ax in (0, 1):
        assert integrate.quad(potential.marginal_density, -5, 5, args=(ax,))[0] == \
            pytest.approx(1, abs=1e-10)
    g = np.linspace(-3, 3, 601)
    X, Y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], -1)
    dens = potential.density(pts).reshape(X.shape)
    assert integrate.simpson(integrate.simpson(dens, x=g), x=g) == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(dens, np.outer(potential.marginal_density(g, 0),
                                              potential.marginal_density(g, 1)), rtol=1e-12)


@pytest.mark.parametrize("C", [0.0, 0.8])
def test_exp_minus_u_is_stationary_for_the_fokker_planck_operator(C):
    # L* p = -div(f p) + Laplacian p must vanish (METHODS §6: the rotation is divergence-free
    # w.r.t. p). Second-order central differences on a grid: residual O(h^2) ~ 1e-4 relative to
    # the size of the individual terms.
    h = 4e-3
    g = np.arange(-2.0, 2.0 + h / 2, h)
    X, Y = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel()], -1)
    p = potential.density(pts).reshape(X.shape)
    f = potential.drift(pts, C=C).reshape(X.shape + (2,))
    fp0, fp1 = f[..., 0] * p, f[..., 1] * p
    div = (np.gradient(fp0, h, axis=0) + np.gradient(fp1, h, axis=1))
    lap = (np.roll(p, 1, 0) + np.roll(p, -1, 0) + np.roll(p, 1, 1) + np.roll(p, -1, 1)
           - 4 * p) / h**2
    res = (-div + lap)[2:-2, 2:-2]
    scale = np.abs(lap[2:-2, 2:-2]).max()
    assert np.abs(res).max() < 1e-3 * scale
    # and the check has teeth: a rigid rotation J x is not divergence-free w.r.t. exp(-U)
    bad = f + 0.8 * np.stack([-Y, X], -1)
    div_bad = (np.gradient(bad[..., 0] * p, h, axis=0) + np.gradient(bad[..., 1] * p, h, axis=1))
    assert np.abs((-div_bad + lap)[2:-2, 2:-2]).max() > 0.1 * scale


def test_marginal_histograms_match_exact_marginals(run):
    x = run.x.values  # (member, time, k)
    C = run.attrs["param_C"]
    for ax in (0, 1):
        # members are independent, their effective sample sizes add. Measured tau: ~2 (axis 0)
        # and ~5-7 (axis 1) time units, so n_eff ~ 4000 and ~1300 out of 8000 time units.
        n_eff = float(np.sum(effective_sample_size(x[..., ax], axis=1)))
        assert n_eff > 800
        # KS 99.9% quantile for independent samples: 1.95 / sqrt(n); n -> n_eff
        tol = 1.95 / np.sqrt(n_eff)
        d = ks_distance(x[..., ax], lambda v: potential.marginal_cdf(v, ax))
        # the test can fail: the marginal at half the temperature, p ∝ exp(-2 U), is rejected
        wrong = cdf_of(lambda t: -2 * ((t**2 - A[ax] ** 2) ** 2 + B[ax] * t))
        d_wrong = ks_distance(x[..., ax], wrong)
        print(f"potential C={C} axis {ax}: n_eff={n_eff:.0f} KS={d:.4f} tol={tol:.4f} "
              f"KS(exp(-2U))={d_wrong:.3f}")
        assert d < tol, (ax, d, tol)
        assert d_wrong > 2 * tol, (ax, d_wrong, tol)


def test_rotation_shows_in_the_lagged_covariance(run):
    # Cdot(0) = <f(x) x^T> = Phi <s x^T> = -Phi, so the antisymmetric part of C(h) / h
    # estimates -Phi_A = -C J up to O(h); Richardson extrapolation over lags h and 2h (h = 0.01)
    # removes the O(h) term (measured: 0.746 at lag h alone for C = 0.8). The noise of the
    # estimate is ~ sqrt(2 h) |x| / (h sqrt(n)) ~ 0.02 for n = 8e5 samples; tolerance 0.05.
    x = run.x.values
    C = run.attrs["param_C"]
    h = run.attrs["sample_interval"]

    def phi_a(lag):
        Ch = np.einsum("mti,mtj->ij", x[:, lag:], x[:, :-lag]) / (x.shape[0] * (x.shape[1] - lag))
        return -(Ch - Ch.T)[1, 0] / (2 * lag * h)

    est = 2 * phi_a(1) - phi_a(2)
    print(f"potential C={C}: Phi_A[1,0] lag-h {phi_a(1):.3f}, extrapolated {est:.3f} (exact {C})")
    assert est == pytest.approx(C, abs=0.05)


def test_dims_attrs(run):
    assert run.x.dims == ("member", "time", "k")
    np.testing.assert_array_equal(run.k.values, [0, 1])
    a = run.attrs
    assert a["equation"] == potential.EQUATION
    assert a["param_C"] in (0.0, 0.8)
    np.testing.assert_allclose(a["param_A"], A)
    np.testing.assert_allclose(a["param_B"], B)
    assert a["dt"] == 1e-3 and a["save_every"] == 10 and a["integrator"] == "heun"
    assert a["seed"] == "21"
    np.testing.assert_allclose(np.diff(run.time.values), 0.01)


def test_streaming_equals_in_memory_and_reproducible(tmp_path):
    kw = dict(n_samples=300, n_members=2, seed=4, C=0.8, progress=False)
    mem = potential.simulate(**kw)
    disk = potential.simulate(path=tmp_path / "pot.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)
    xr.testing.assert_identical(potential.simulate(**kw), mem)
    assert not np.allclose(potential.simulate(**{**kw, "seed": 5}).x, mem.x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=0.0), "dt must be"),
    (dict(C=np.nan), "C must be finite"),
    (dict(A=(1.0, 1.0, 1.0)), "A and B"),
    (dict(x0=[0.0, 0.0, 0.0]), "x0"),
    (dict(scheme="rk4"), "scheme"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        potential.simulate(progress=False, **{"n_samples": 10, **kwargs})
