"""Quick tests of :func:`xlangevin.lyapunov` (QR method) and of the simulators' Jacobians.

Full-length acceptance runs (Lorenz-63 to 1 %, Lorenz-96 N = 40) are in
``tests/validation/test_lyapunov_validation.py``. Tolerances here follow from the batch-means
standard errors measured at these run lengths (stated per test).
"""

import numpy as np
import pytest

import xlangevin as xl
from xlangevin.systems import (double_well, ks, lorenz63, lorenz96, ou, potential, slowfast,
                               triad)
from xlangevin.tangent import kaplan_yorke, lyapunov
from xlangevin.tangent.maps import model_drift_jacobian

A_OU = np.array([[-1.0, 0.5], [-0.3, -2.0]])
L63_DIV = -(10.0 + 1.0 + 8.0 / 3.0)


def _fd(f, u, h=1e-6):
    return np.stack([(f(u + h * e) - f(u - h * e)) / (2 * h) for e in np.eye(u.size)], 1)


@pytest.mark.parametrize("mod, kw", [
    (lorenz63, {}), (triad, {}), (double_well, {}), (potential, {"C": 0.8}),
    (slowfast, {"coupling": "multiplicative"}), (lorenz96, {"K": 5, "J": 3, "fast_ring": "sector"}),
    (lorenz96, {"K": 4, "J": 4}), (lorenz96, {"K": 40, "J": 0, "F": 8.0})])
def test_system_jacobians_match_finite_differences(mod, kw):
    """numpy ``jacobian`` and numba tangent ``Df V`` vs central differences of ``drift``."""
    spec = mod.tangent_system(**kw)
    u = np.random.default_rng(0).standard_normal(spec.x0.size)
    D = mod.jacobian(u[None], **kw)[0]
    Dn = _fd(lambda v: mod.drift(v[None], **kw)[0], u)
    np.testing.assert_allclose(D, Dn, atol=1e-6 * max(1.0, np.abs(D).max()))
    V = np.random.default_rng(1).standard_normal((u.size, 3))
    out = np.empty_like(V)
    spec.tangent(u, spec.params, V, out)
    np.testing.assert_allclose(out, D @ V, atol=1e-9 * max(1.0, np.abs(D).max()))


def test_ou_and_ks_jacobians():
    np.testing.assert_array_equal(ou.jacobian(np.zeros((3, 2)), A_OU),
                                  np.broadcast_to(A_OU, (3, 2, 2)))
    x = 2 * np.pi * np.arange(32) / 32
    u = 1.3 * np.sin(x) + 0.2 * np.cos(3 * x)
    D = ks.jacobian(u, L=22.0)
    np.testing.assert_allclose(D, _fd(lambda v: ks.rhs(v, 22.0), u), atol=1e-6 * np.abs(D).max())


def test_kaplan_yorke():
    assert kaplan_yorke([1.0, 0.0, -2.0]) == pytest.approx(2.5)
    assert kaplan_yorke([0.906, 0.0, -14.572]) == pytest.approx(2.0622, abs=1e-4)
    assert kaplan_yorke([-1.0, -2.0]) == 0.0
    assert kaplan_yorke([1.0, 0.5]) == 2.0          # all partial sums >= 0: a lower bound


def test_ou_exponents_are_eigenvalue_real_parts_and_vectors():
    """Linear ODE: the exponents are Re eig(A) (-1.1838, -1.8162); RK4 at dt = 0.01 is exact
    to ~1e-9, the transient of the QR iteration decays like exp(-0.63 t): 1e-3 at T = 50."""
    ds = lyapunov(lambda x: A_OU @ x, jacobian=lambda x: A_OU, x0=np.ones(2), dt=0.01,
                  t_total=50.0, seed=0, vectors=True)
    want = np.sort(np.linalg.eigvals(A_OU).real)[::-1]
    np.testing.assert_allclose(ds.exponents, want, atol=1e-3)
    assert ds.exponent_sum == pytest.approx(np.trace(A_OU), abs=1e-3)
    spec = ou.tangent_system(A_OU, np.eye(2))            # the simulator's tangent is A V
    out = np.empty((2, 2))
    spec.tangent(np.zeros(2), spec.params, np.eye(2), out)
    np.testing.assert_array_equal(out, A_OU)
    Q = ds.vectors.values[-1]
    np.testing.assert_allclose(Q.T @ Q, np.eye(2), atol=1e-12)
    w, E = np.linalg.eig(A_OU)
    lead = np.real(E[:, np.argmax(w.real)])
    assert abs(Q[:, 0] @ lead) / np.linalg.norm(lead) > 0.9999
    assert ds.history.dims == ("qr_time", "exponent")
    assert ds.exponents.attrs["units"] == "1 / (model time unit)"


def test_lorenz63_short_run():
    """T = 500: batch-means se ~0.01 (lambda_1), ~0.005 (lambda_2), ~0.01 (lambda_3); the
    bounds are ~4 se. The sum equals -(sigma + 1 + beta) up to the RK4 error of det (1e-4)."""
    ds = lyapunov(lorenz63, t_total=500.0, seed=1)
    lam = ds.exponents.values
    assert lam[0] == pytest.approx(0.906, abs=0.05)
    assert abs(lam[1]) < 0.02
    assert lam[2] == pytest.approx(-14.572, abs=0.06)
    assert float(ds.exponent_sum) == pytest.approx(L63_DIV, abs=1e-3)
    assert float(ds.mean_divergence) == pytest.approx(L63_DIV, abs=1e-12)
    assert float(ds.kaplan_yorke_dimension) == pytest.approx(2.06, abs=0.01)
    assert np.all(ds.standard_error > 0) and np.all(ds.standard_error < 0.03)
    again = lyapunov(lorenz63, t_total=500.0, seed=1)
    np.testing.assert_array_equal(again.exponents, ds.exponents)     # seeded


def test_lorenz96_sum_is_minus_n():
    """One-scale Lorenz-96 (J = 0), N = 40, F = 8: div f = -40 exactly; T = 100 gives lambda_1
    within ~0.1 of 1.69 (se ~0.04) and 12-15 positive exponents."""
    ds = lyapunov(lorenz96, K=40, J=0, F=8.0, t_total=100.0, seed=0)
    lam = ds.exponents.values
    assert float(ds.exponent_sum) == pytest.approx(-40.0, abs=1e-3)
    assert float(ds.mean_divergence) == pytest.approx(-40.0, abs=1e-12)
    assert lam[0] == pytest.approx(1.69, abs=0.15)
    assert 12 <= np.sum(lam > 0) <= 15
    assert np.all(np.diff(lam) < 0.05)


def test_random_dynamical_system_one_dimensional():
    """1-D Ito SDE: lambda = E[f'(x)] - E[g'(x)^2] / 2 under the stationary density (triad:
    -1.8158 - 0.2000 = -2.0158). T = 500 at dt = 1e-3: se ~0.025; bound 0.08. The Ito term
    (0.2) must be there."""
    ds = lyapunov(triad, stochastic=True, dt=1e-3, t_total=500.0, seed=0)
    x = np.linspace(-3, 8, 200_001)
    mean_fp = np.trapezoid(triad.density(x) * triad.jacobian(x)[:, 0, 0], x)
    want = mean_fp - triad.DEFAULTS["B"] ** 2 / 2
    assert float(ds.exponents[0]) == pytest.approx(want, abs=0.08)
    assert abs(float(ds.exponents[0]) - mean_fp) > 0.1
    assert ds.attrs["integrator"] == "euler"


@pytest.mark.filterwarnings("ignore:the leading exponent")
def test_heun_random_dynamical_system_sum():
    """Stochastic Lorenz-63 (Heun, additive noise): the sum is still the mean divergence."""
    ds = lyapunov(lorenz63, stochastic=True, dt=1e-3, t_total=50.0, seed=0)
    assert float(ds.exponent_sum) == pytest.approx(L63_DIV, abs=2e-3)
    assert ds.attrs["integrator"] == "heun"


@pytest.mark.filterwarnings("ignore:the leading exponent")
def test_callable_drift_matches_fused_kernel():
    x0 = np.array([1.0, 1.0, 25.0])
    a = lyapunov(lambda x: lorenz63.drift(x), jacobian=lambda x: lorenz63.jacobian(x),
                 x0=x0, dt=0.01, t_total=20.0, burn_in=1.0, seed=3, n_batches=10)
    b = lyapunov(lorenz63, x0=x0, dt=0.01, t_total=20.0, burn_in=1.0, seed=3, n_batches=10)
    np.testing.assert_allclose(a.exponents, b.exponents, rtol=1e-4, atol=1e-4)
    assert a.attrs["integrator"] == "rk4"


def test_langevin_model_matches_its_linear_drift():
    """Gaussian score: the drift is linear, so the exponents of the Euler map are exactly
    log |eig(I + dt Db)| / dt."""
    data = ou.simulate(A_OU, np.eye(2), n_samples=20_000, dt=0.01, seed=1, progress=False)
    model = xl.EffectiveLangevin(seed=0, progress=False).fit(data.x, score="gaussian")
    ds = lyapunov(model, dt=0.01, t_total=20.0, seed=0, n_batches=10)
    # the QR transient decays like exp(-gap t) / T with gap ~1 after burn_in = 10: ~2e-6
    Jb = model_drift_jacobian(model, np.zeros((1, 2)))[0]
    np.testing.assert_allclose(Jb, _fd(lambda v: model.drift(v[None])[0], np.zeros(2)),
                               atol=1e-7)
    want = np.sort(np.log(np.abs(np.linalg.eigvals(np.eye(2) + 0.01 * Jb))))[::-1] / 0.01
    np.testing.assert_allclose(ds.exponents, want, atol=1e-5)
    assert ds.attrs["system"] == "LangevinModel"
    assert float(ds.mean_divergence) == pytest.approx(np.trace(Jb), rel=1e-6)


def test_bad_inputs():
    x0 = np.ones(3)
    f = lorenz63.drift
    with pytest.raises(ValueError, match="square"):
        lyapunov(f, jacobian=lambda x: np.ones((3, 2)), x0=x0, dt=0.01, t_total=5.0)
    with pytest.raises(ValueError, match="non-finite"):
        lyapunov(f, jacobian=lambda x: np.full((3, 3), np.nan), x0=x0, dt=0.01, t_total=5.0)
    with pytest.raises(ValueError, match="too short"):
        lyapunov(lorenz63, t_total=0.5)
    with pytest.raises(ValueError, match="between 1 and the dimension 3"):
        lyapunov(lorenz63, n_exponents=4, t_total=10.0)
    with pytest.raises(ValueError, match="jacobian"):
        lyapunov(f, x0=x0, dt=0.01)
    with pytest.raises(TypeError, match="cannot take the Lyapunov spectrum"):
        lyapunov(3.0)
    with pytest.warns(RuntimeWarning, match="increase t_total"):
        lyapunov(lorenz63, t_total=5.0, n_batches=10, seed=0)
    with pytest.raises(FloatingPointError, match="blew up"):
        lyapunov(lorenz63, dt=0.2, t_total=100.0, burn_in=0.0)


def test_sampler_lyapunov_vectors_align_with_the_arc():
    """Diffusion-map split-step sampler (data-aware noise) on the paper's arc (M = 500): the
    leading finite-time vector lies along the arc (measured median angle ~1 degree at M = 2000;
    bound 10), the transverse exponent is strongly contracting; a drift shift is reported."""
    from xlangevin import samplers
    from xlangevin.systems import manifolds
    from xlangevin.tangent.sampler import sampler_lyapunov, support_error

    s = samplers.DiffusionMap(eps=0.009, standardize=False, seed=0).fit(
        manifolds.noisy_arc(500, seed=0))
    tan = lambda P: np.stack([-P[:, 1], P[:, 0]], 1)      # noqa: E731  (circle tangent)
    ds = sampler_lyapunov(s, n_chains=40, n_steps=15, seed=0, tangent=tan)
    assert ds.exponents.dims == ("chain", "exponent") and ds.sizes["exponent"] == 2
    assert float(ds.median_angle) < 10.0
    lam = ds.exponents.mean("chain").values
    assert lam[1] < lam[0] and lam[1] < -0.5
    dist = lambda P: np.abs(np.linalg.norm(P, axis=1) - 1.0)  # noqa: E731
    e0 = support_error(s, dist, n_chains=100, n_steps=10, seed=0)
    e1 = support_error(s, dist, n_chains=100, n_steps=10, seed=0, drift_shift=[0.05, -0.05])
    assert 0 < e0 < 0.06 and np.isfinite(e1) and e1 != e0
