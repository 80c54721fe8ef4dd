"""Ornstein–Uhlenbeck: exact sampling reproduces C0 and C(tau) = expm(A tau) C0."""

import numpy as np
import pytest
import scipy.linalg as sla
import xarray as xr

from xlangevin.systems import ou

J = np.array([[0.0, -1.0], [1.0, 0.0]])
A2 = -(np.eye(2) + 0.8 * J)  # rotation: Phi = I + 0.8 J, C0 = I with B = sqrt(2) I
B2 = np.sqrt(2.0) * np.eye(2)


def random_case(d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    S = rng.standard_normal((d, d))
    A = -(M @ M.T / d + 0.3 * np.eye(d)) + (S - S.T) / 2  # stable, non-normal
    B = rng.standard_normal((d, k))  # fewer noises than dimensions (generic: controllable)
    return A, B


A3, B3 = random_case()


def test_exact_formulas_two_d_rotation():
    np.testing.assert_allclose(ou.stationary_covariance(A2, B2), np.eye(2), atol=1e-12)
    np.testing.assert_allclose(ou.langevin_phi(A2, B2), [[1, -0.8], [0.8, 1]], atol=1e-12)
    np.testing.assert_allclose(ou.langevin_sigma(A2, B2), np.eye(2), atol=1e-12)
    tau = 0.7
    # expm(-(I + 0.8 J) tau) = e^{-tau} x rotation by the angle -0.8 tau
    R = np.exp(-tau) * np.array([[np.cos(0.8 * tau), np.sin(0.8 * tau)],
                                 [-np.sin(0.8 * tau), np.cos(0.8 * tau)]])
    np.testing.assert_allclose(ou.lagged_covariance(A2, B2, tau), R, atol=1e-12)


def test_exact_formulas_random_case():
    C0 = ou.stationary_covariance(A3, B3)
    np.testing.assert_allclose(A3 @ C0 + C0 @ A3.T + B3 @ B3.T, 0, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(C0) > 0)
    # Langevin form: Phi s(x) = A x and Phi_S = B B^T / 2
    Phi = ou.langevin_phi(A3, B3)
    x = np.random.default_rng(1).standard_normal((20, 3))
    np.testing.assert_allclose(ou.score(x, A3, B3) @ Phi.T, ou.drift(x, A3), atol=1e-12)
    np.testing.assert_allclose((Phi + Phi.T) / 2, B3 @ B3.T / 2, atol=1e-12)
    # score = grad log density (central differences)
    h = 1e-5
    num = np.stack([(np.log(ou.density(x + h * e, A3, B3)) - np.log(ou.density(x - h * e, A3, B3)))
                    / (2 * h) for e in np.eye(3)], -1)
    np.testing.assert_allclose(ou.score(x, A3, B3), num, rtol=1e-6, atol=1e-6)
    # one-step innovation: F C0 F^T + L L^T = C0
    F, L = ou.transition(A3, B3, 0.3)
    np.testing.assert_allclose(F @ C0 @ F.T + L @ L.T, C0, atol=1e-12)
    taus = ou.lagged_covariance(A3, B3, [0.0, 0.5])
    assert taus.shape == (2, 3, 3)
    np.testing.assert_allclose(taus[1], sla.expm(0.5 * A3) @ C0)


def member_estimates(x, lag):
    """Per-member sample estimate of <x(t + lag) x(t)^T>: (members, d, d)."""
    n = x.shape[1] - lag
    return np.einsum("mti,mtj->mij", x[:, lag:], x[:, :n]) / n


@pytest.mark.parametrize("case", ["rotation-2d", "random-3d"])
def test_sample_covariances_match_exact(case):
    A, B = (A2, B2) if case == "rotation-2d" else (A3, B3)
    dt = 0.05
    # 200 independent members (each starts stationary) of 1000 samples: the spread of the
    # per-member estimates gives the standard error of their mean exactly; every matrix entry
    # of C(0), C(0.5), C(1.5) must lie within 5 standard errors (a 5-sigma bound keeps the
    # false-alarm probability ~1e-5 over the ~50 entries checked).
    ds = ou.simulate(A, B, n_samples=1000, dt=dt, n_members=200, seed=17, progress=False)
    x = ds.x.values
    worst = 0.0
    for lag in (0, 10, 30):
        est = member_estimates(x, lag)
        mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(est.shape[0])
        exact = ou.lagged_covariance(A, B, lag * dt)
        z = np.abs(mean - exact) / se
        worst = max(worst, z.max())
        assert np.all(z < 5), (lag, mean, exact, se)
        if case == "rotation-2d" and lag == 10:
            # the test can fail: the transposed propagator (wrong rotation sense) is rejected
            wrong = sla.expm(A.T * lag * dt) @ ou.stationary_covariance(A, B)
            z_wrong = np.max(np.abs(mean - wrong) / se)
            print(f"OU rotation-2d: transposed propagator rejected at {z_wrong:.0f} SE")
            assert z_wrong > 20
    print(f"OU {case}: worst |estimate - exact| / SE over C(0), C(0.5), C(1.5) = {worst:.2f}")


def test_single_long_trajectory_chains_transitions():
    # one member, 2e5 samples at h = 0.01: the transition is applied 2e5 times in a row.
    # Standard error of a lag covariance ~ sqrt(tau_corr / T) with T = 2000, tau_corr ~ 1:
    # ~0.03; tolerance 0.12 (4 SE).
    ds = ou.simulate(A2, B2, n_samples=200_000, dt=0.01, seed=3, progress=False)
    x = ds.x.values[None]
    assert ds.x.dims == ("time", "k")
    for lag in (0, 50):
        est = member_estimates(x, lag)[0]
        err = np.abs(est - ou.lagged_covariance(A2, B2, lag * 0.01)).max()
        print(f"OU single trajectory: lag {lag}: max error {err:.3f} (tol 0.12)")
        np.testing.assert_allclose(est, ou.lagged_covariance(A2, B2, lag * 0.01), atol=0.12)


def test_stein_identity_and_attrs():
    ds = ou.simulate(A3, B3, n_samples=2000, n_members=50, seed=8, progress=False)
    x = ds.x.values.reshape(-1, 3)
    V = ou.score(x, A3, B3).T @ x / x.shape[0]
    np.testing.assert_allclose(V, -np.eye(3), atol=0.1)  # ~1e5 samples, n_eff ~1e4
    a = ds.attrs
    assert a["equation"] == ou.EQUATION and a["integrator"] == "exact"
    np.testing.assert_allclose(np.reshape(a["param_A"], a["param_A_shape"]), A3)
    np.testing.assert_allclose(np.reshape(a["param_B"], a["param_B_shape"]), B3)
    assert a["dt"] == 0.01 and a["seed"] == "8"
    np.testing.assert_allclose(np.diff(ds.time.values), 0.01)
    assert ds.x.dims == ("member", "time", "k")


def test_streaming_equals_in_memory_and_reproducible(tmp_path):
    kw = dict(n_samples=700, n_members=3, seed=12, progress=False)
    mem = ou.simulate(A3, B3, **kw)
    disk = ou.simulate(A3, B3, path=tmp_path / "ou.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)
    # chunking does not change the numbers (one normal stream)
    xr.testing.assert_identical(ou.simulate(A3, B3, chunk_samples=64, **kw), mem)
    assert not np.allclose(ou.simulate(A3, B3, **{**kw, "seed": 13}).x, mem.x)


def test_x0_and_burn_in():
    ds = ou.simulate(A2, B2, n_samples=5, x0=[50.0, 0.0], n_members=4000, burn_in=20.0, seed=2,
                     progress=False)
    x = ds.x.values[:, 0]
    # after 20 relaxation times the memory of x0 (50 e^-20 ~ 1e-7) is gone: stationary N(0, I);
    # SE of the mean 1/sqrt(4000) = 0.016
    np.testing.assert_allclose(x.mean(0), 0, atol=0.08)
    np.testing.assert_allclose(np.cov(x.T), np.eye(2), atol=0.1)
    assert ds.time.values[0] == pytest.approx(20.01)


@pytest.mark.parametrize("A, B, kwargs, message", [
    (np.ones((2, 3)), B2, {}, "square"),
    (A2, np.ones((3, 2)), {}, "B must have shape"),
    (np.eye(2), B2, {}, "stable"),
    (A2, np.zeros((2, 1)), {}, "singular"),
    (A2, B2, dict(dt=-0.1), "dt must be"),
    (A2, B2, dict(n_members=0), "n_members"),
    (A2, B2, dict(x0=[1.0, 2.0, 3.0]), "x0"),
])
def test_bad_arguments(A, B, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ou.simulate(A, B, progress=False, **{"n_samples": 10, **kwargs})
