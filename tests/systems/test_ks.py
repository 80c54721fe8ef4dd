"""Kuramoto–Sivashinsky simulator: ETDRK4 accuracy, invariants, chaos and statistics, I/O.

Reference numbers (measured with this code; see the individual tests for the run lengths):

* ETDRK4 on Kassam–Trefethen's test (u0 = cos(x/16)(1 + sin(x/16)), L = 32 pi, N = 128, t = 10)
  converges to an independent DOP853 solution of ``rhs`` (1e-12) at 4th order: pairwise orders
  3.67, 3.84, 3.88 for dt = 0.04 .. 0.005. (For dt = 0.2 .. 0.025 the orders are 2.5, 3.1, 3.6:
  the pre-asymptotic, stiff regime of ETDRK4, not yet the asymptotic 4th order.)
* Leading Lyapunov exponent for L = 22, N = 64, dt = 0.25: 0.0484 +- 0.0004 (8 trajectories x
  20 000 time units; member-to-member sd 0.0010 at 20 000 units, i.e. ~0.0029 at 2 500 units);
  tangent-linear and two-trajectory estimates agree to 1e-8. Cvitanović, Davidchack & Siminos
  (2010) quote ~0.048 for L = 22; 0.043 is also quoted in the later literature.
* Standard deviation of u for L = 34, N = 64: 1.42 (1.4258 +- 0.0056 at dt 0.25, 1.4167 +- 0.0061
  at dt 0.1, 1.418 +- 0.007 at N = 128: resolution independent). L = 22 gives 1.18. The
  fluctuations are slow: the pointwise autocorrelation drops to 0.5 in ~10 time units but keeps a
  tail (0.23 at lag 100, 0.12 at lag 200), so the sd of a block-rms over 1000 / 2000 / 5000 units
  is 0.062 / 0.041 / 0.025; tolerances below use these.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from xlangevin.systems import ks


def _kt_u0(x):
    return np.cos(x / 16) * (1 + np.sin(x / 16))


# ---------------------------------------------------------------------------------------------
# right-hand side and stepper
# ---------------------------------------------------------------------------------------------
def test_rhs_matches_analytic_derivatives():
    L, N = 22.0, 64
    x = ks.grid(L, N)
    q = 3 * 2 * np.pi / L
    u = np.sin(q * x) + 0.5 * np.cos(2 * q * x)
    ux = q * np.cos(q * x) - q * np.sin(2 * q * x)
    uxx = -q**2 * np.sin(q * x) - 2 * q**2 * np.cos(2 * q * x)
    uxxxx = q**4 * np.sin(q * x) + 8 * q**4 * np.cos(2 * q * x)
    exact = -u * ux - uxx - uxxxx
    np.testing.assert_allclose(ks.rhs(u, L), exact, atol=1e-10 * np.abs(exact).max())
    # batched over leading dims, and the dealiased rhs equals it for a resolved product
    np.testing.assert_allclose(ks.rhs(np.stack([u, u]), L, dealias=True)[1], exact,
                               atol=1e-10 * np.abs(exact).max())


def test_contour_coefficients_match_closed_forms():
    st = ks.ETDRK4(L=34.0, N=64, dt=0.1)
    h, z = st.dt, st.dt * st.Lk
    big = np.abs(z) > 1.0  # where the explicit formulas have no cancellation problem
    e = np.exp(z[big])
    zb = z[big]
    np.testing.assert_allclose(st.Q[big], h * (np.exp(zb / 2) - 1) / zb, rtol=1e-12)
    np.testing.assert_allclose(st.f1[big], h * (-4 - zb + e * (4 - 3 * zb + zb**2)) / zb**3,
                               rtol=1e-10)
    np.testing.assert_allclose(st.f2[big], h * (2 + zb + e * (zb - 2)) / zb**3, rtol=1e-10)
    np.testing.assert_allclose(st.f3[big], h * (-4 - 3 * zb - zb**2 + e * (4 - zb)) / zb**3,
                               rtol=1e-10)
    # k = 0 limits (where the explicit formulas are 0/0): Q = h/2, f1 = f2 = f3 = h/6
    assert st.Lk[0] == 0
    np.testing.assert_allclose([st.Q[0], st.f1[0], st.f2[0], st.f3[0]],
                               [h / 2, h / 6, h / 6, h / 6], rtol=1e-13)
    # the 2/3 rule: nonlinear modes n < N/3 kept (n <= 21 of 0..32)
    assert np.count_nonzero(st.g) == 21  # n = 1..21 (n = 0 has k = 0)
    assert st.g[21] != 0 and st.g[22] == 0


def test_etdrk4_agrees_with_independent_integrator():
    """ETDRK4 integrates the same vector field as rhs(dealias=True) (DOP853 reference)."""
    L, N, T = 32 * np.pi, 128, 10.0
    x = ks.grid(L, N)
    u0 = _kt_u0(x)
    sol = solve_ivp(lambda t, u: ks.rhs(u, L, dealias=True), (0, T), u0, method="DOP853",
                    rtol=1e-12, atol=1e-12)
    u_ivp = sol.y[:, -1]
    u_etd = ks.step_etdrk4(u0, L, dt=0.005, n_steps=2000)
    assert np.abs(u_etd - u_ivp).max() < 1e-9
    assert np.abs(u_ivp - u0).max() > 0.5  # the solution did evolve


def test_etdrk4_fourth_order_convergence():
    """Kassam–Trefethen's KS test: observed order in [3.5, 4.5] against a fine reference."""
    L, N, T = 32 * np.pi, 128, 10.0
    u0 = _kt_u0(ks.grid(L, N))
    ref = ks.step_etdrk4(u0, L, dt=0.0005, n_steps=20000)
    dts = np.array([0.04, 0.02, 0.01, 0.005])
    errs = np.array([np.abs(ks.step_etdrk4(u0, L, dt, int(round(T / dt))) - ref).max()
                     for dt in dts])
    orders = np.log2(errs[:-1] / errs[1:])
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert np.all((orders > 3.5) & (orders < 4.5)), (errs, orders)
    assert 3.5 < slope < 4.5
    assert errs[-1] > 1e-12 * 5  # above the round-off floor (~2e-12 over 2e4 steps)


def test_galilean_invariance():
    """u0 + c evolves into the solution from u0 translated by c t, plus c (tests -u u_x)."""
    L, N, T, c, dt = 22.0, 64, 20.0, 0.7, 0.02
    rng = np.random.default_rng(0)
    w0 = 10 * ks.random_initial_condition(rng, 1, L, N)[0]
    st = ks.ETDRK4(L, N, dt)
    n = int(round(T / dt))
    w, uc = st.advance(w0, n), st.advance(w0 + c, n)
    shifted = np.fft.irfft(np.fft.rfft(w) * np.exp(-1j * st.k * c * T), N) + c
    assert np.abs(uc - shifted).max() < 1e-4
    assert np.abs(w - w0).max() > 0.5


def test_tangent_step_is_jacobian_of_step():
    st = ks.ETDRK4(22.0, 64, 0.25)
    rng = np.random.default_rng(1)
    v = st.advance_hat(st.to_hat(10 * ks.random_initial_condition(rng, 2, 22.0, 64)), 400)
    w = st.to_hat(rng.standard_normal((2, 64)))
    v1, w1 = st.step_hat_tangent(v, w)
    np.testing.assert_array_equal(v1, st.step_hat(v))
    h = 1e-6
    fd = (st.step_hat(v + h * w) - st.step_hat(v - h * w)) / (2 * h)
    assert np.abs(fd - w1).max() < 1e-7 * np.abs(w1).max()


# ---------------------------------------------------------------------------------------------
# invariants, chaos, statistics
# ---------------------------------------------------------------------------------------------
def test_spatial_mean_conserved():
    L, N = 34.0, 64
    x = ks.grid(L, N)
    u0 = 0.3 + 0.2 * np.cos(2 * np.pi * x / L) + 0.1 * np.sin(6 * np.pi * x / L)
    ds = ks.simulate(n_samples=2000, L=L, N=N, dt=0.25, burn_in=0, u0=u0, progress=False)
    mean = ds.u.mean("x").values
    assert np.abs(mean - u0.mean()).max() < 1e-12
    assert ds.u.std().item() > 1.0  # chaotic, far from the initial condition


def test_lyapunov_exponent_L22():
    """4 x 2500 time units: sd of the mean ~0.0015, so [0.040, 0.056] is ~ +-5 sd around 0.048."""
    lam = ks.lyapunov_exponent(L=22.0, N=64, dt=0.25, t_total=2500, seed=3, n_members=4,
                               return_members=True)
    assert lam.shape == (4,)
    assert 0.040 < lam.mean() < 0.056, lam
    assert np.all((lam > 0.035) & (lam < 0.062)), lam  # each member: +-4.5 sd (0.0029)


def test_lyapunov_methods_agree():
    kw = dict(L=22.0, t_total=200, seed=4, n_members=2, burn_in=300, return_members=True)
    a = ks.lyapunov_exponent(method="tangent", **kw)
    b = ks.lyapunov_exponent(method="benettin", **kw)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_statistics_L34_and_seed_reproducibility():
    """4 members x 2500 units: sd of the estimated std ~0.018; window 1.42 +- 0.09."""
    kw = dict(n_samples=2500, L=34.0, dt=0.25, burn_in=500, n_members=4, progress=False)
    a = ks.simulate(seed=7, **kw)
    b = ks.simulate(seed=7, **kw)
    c = ks.simulate(seed=8, **kw)
    np.testing.assert_array_equal(a.u.values, b.u.values)
    assert not np.allclose(a.u.values[:, -1], c.u.values[:, -1])
    std = a.u.std().item()
    assert 1.33 < std < 1.51, std
    assert abs(a.u.mean().item()) < 1e-10  # zero-mean initial condition, mean conserved
    # L = 22 is clearly different (1.18): the test resolves the L-dependence
    d = ks.simulate(n_samples=2500, L=22.0, dt=0.25, burn_in=500, n_members=4, seed=7,
                    progress=False)
    assert 1.1 < d.u.std().item() < 1.27


# ---------------------------------------------------------------------------------------------
# Dataset, streaming, resolve, arguments
# ---------------------------------------------------------------------------------------------
def test_dataset_layout_and_attrs():
    ds = ks.simulate(n_samples=20, L=22.0, N=32, dt=0.25, sample_interval=0.5, burn_in=10,
                     seed=0, progress=False)
    assert ds.u.dims == ("time", "x")
    np.testing.assert_allclose(ds.x.values, 22.0 * np.arange(32) / 32)
    assert "units" in ds.x.attrs
    np.testing.assert_allclose(ds.time.values, 10.0 + 0.5 * np.arange(1, 21))
    assert ds.attrs["param_L"] == 22.0 and ds.attrs["param_N"] == 32
    assert ds.attrs["dt"] == 0.25 and ds.attrs["save_every"] == 2
    assert ds.attrs["integrator"] == ks.INTEGRATOR and ds.attrs["burn_in"] == 10.0
    assert ds.attrs["seed"] == "0" and ds.attrs["equation"] == ks.EQUATION
    # the saved samples are the stepper's states
    st = ks.ETDRK4(22.0, 32, 0.25)
    u0 = ks.random_initial_condition(np.random.default_rng(0), 1, 22.0, 32)
    u = st.advance(u0, 40 + 2)[0]
    np.testing.assert_allclose(ds.u.values[0], u, atol=1e-12)


def test_streaming_matches_memory(tmp_path):
    kw = dict(n_samples=30, L=34.0, dt=0.25, burn_in=50, n_members=3, seed=5, progress=False,
              chunk_samples=7)
    mem = ks.simulate(**kw)
    path = tmp_path / "ks.nc"
    disk = ks.simulate(path=path, **kw)
    assert path.exists()
    assert mem.u.dims == disk.u.dims == ("member", "time", "x")
    np.testing.assert_array_equal(mem.u.values, disk.u.values)
    np.testing.assert_array_equal(mem.time.values, disk.time.values)
    np.testing.assert_array_equal(mem.x.values, disk.x.values)
    assert disk.attrs["integrator"] == ks.INTEGRATOR
    import xarray as xr
    with xr.open_dataset(path) as f:
        assert "units" in f.x.attrs
    disk.close()
    # resolved output streamed too
    res = ks.simulate(path=tmp_path / "ks32.nc", resolved=True, **kw)
    np.testing.assert_array_equal(res.u.values, mem.u.values[..., ::2])
    res.close()


def test_resolve():
    ds = ks.simulate(n_samples=5, burn_in=20, dt=0.25, seed=1, progress=False)
    r = ks.resolve(ds)
    assert r.sizes["x"] == 32
    np.testing.assert_allclose(r.x.values, 34.0 * np.arange(0, 64, 2) / 64)
    np.testing.assert_array_equal(r.u.values, ds.u.values[:, ::2])
    assert "resolved_state" in r.attrs and "resolved_state" not in ds.attrs
    r2 = ks.simulate(n_samples=5, burn_in=20, dt=0.25, seed=1, progress=False, resolved=True)
    np.testing.assert_array_equal(r2.u.values, r.u.values)
    np.testing.assert_array_equal(r2.x.values, r.x.values)
    assert ks.resolve(ds.u, 16).sizes["x"] == 16
    with pytest.raises(ValueError):
        ks.resolve(ds, 24)


@pytest.mark.parametrize("kwargs", [
    dict(N=63), dict(N=6), dict(N=64.5), dict(L=0.0), dict(L=-3.0), dict(L=np.inf),
    dict(dt=0.0), dict(dt=-0.1), dict(n_samples=0), dict(burn_in=-1.0), dict(n_members=0),
    dict(dt=0.3), dict(sample_interval=0.0), dict(u0=np.zeros(10)),
    dict(u0=np.zeros((3, 64)), n_members=2), dict(u0=np.full(64, np.nan)),
    dict(resolved=24), dict(chunk_samples=0),
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ks.simulate(**{"n_samples": 5, "burn_in": 0, "progress": False, **kwargs})


def test_bad_arguments_helpers():
    with pytest.raises(ValueError):
        ks.ETDRK4(L=22, N=31)
    with pytest.raises(ValueError):
        ks.ETDRK4(L=22, N=64, dt=0)
    with pytest.raises(ValueError):
        ks.rhs(np.zeros(7), 22.0)
    with pytest.raises(ValueError):
        ks.lyapunov_exponent(method="qr")
    with pytest.raises(ValueError):
        ks.lyapunov_exponent(t_total=0)
