"""Full-accuracy Lyapunov spectra (issue 20 acceptance; numbers in docs/lyapunov.md).

Reference values: Lorenz-63 (10, 28, 8/3) [0.9056, 0, -14.5723], D_KY 2.062; one-scale
Lorenz-96 N = 40, F = 8: lambda_1 ~1.69, 13 positive exponents, D_KY ~27.1 (Karimi & Paul 2010,
"Extensive chaos in the Lorenz-96 model"). Run times (< 30 s each) are measured by
benchmarks/bench_lyapunov.py, not asserted here.
"""

import numpy as np
import pytest

from xlangevin.systems import lorenz63, lorenz96
from xlangevin.tangent import lyapunov

pytestmark = pytest.mark.slow


def test_lorenz63_spectrum_to_one_percent():
    """T = 20000 (RK4, dt = 0.01, QR every 0.1): se ~0.002 on lambda_1."""
    ds = lyapunov(lorenz63, t_total=20_000.0, burn_in=100.0, seed=0)
    lam = ds.exponents.values
    np.testing.assert_allclose(lam[[0, 2]], [0.906, -14.572], rtol=0.01)
    assert abs(lam[1]) < 0.01
    assert float(ds.kaplan_yorke_dimension) == pytest.approx(2.06, abs=0.005)
    assert float(ds.exponent_sum) == pytest.approx(-(10 + 1 + 8 / 3), abs=1e-3)


def test_lorenz96_n40_spectrum():
    """T = 5000 (RK4, dt = 0.01, QR every 0.1): se ~0.008 on lambda_1, ~0.1 on D_KY."""
    ds = lyapunov(lorenz96, K=40, J=0, F=8.0, t_total=5000.0, burn_in=100.0, seed=0)
    lam = ds.exponents.values
    assert lam[0] == pytest.approx(1.69, abs=0.03)
    assert np.sum(lam > 0) == 13
    assert float(ds.kaplan_yorke_dimension) == pytest.approx(27.1, abs=0.5)
    assert float(ds.exponent_sum) == pytest.approx(-40.0, abs=1e-3)


def test_flow_map_mse_vs_jacobian_matching_lorenz63():
    """The slides' table (Park, Yang & Chandramoorthy, NeurIPS 2024) with FlowMap (MLP 64-64,
    x + net(x)): 2000 samples of Lorenz-63 at spacing 0.01, 20 epochs, batch 256, Adam 1e-3,
    seeds 0-3, Jacobians of the RK4 map (10 x 1e-3) as targets. Measured (docs/lyapunov.md):
    MSE misses lambda_3 by 22-55 % (mean 36 %), Jacobian matching gets lambda_3 within 1 % and
    lambda_1 within ~6 % (T = 300 spectra, se ~0.03). The orbit's W1 of z to a 1e5-step true
    orbit is smaller with Jacobian matching but NOT 5x smaller (see the docs)."""
    from xlangevin.analysis.distances import wasserstein1
    from xlangevin.tangent import FlowMap, simulator_flow_map

    _, DF = simulator_flow_map(lorenz63, 0.01, 10)
    data = lorenz63.simulate(n_samples=2000, noise=0.0, seed=0, progress=False)
    ref = lorenz63.simulate(n_samples=100_000, noise=0.0, seed=5, progress=False).z.values
    err, w1 = {"mse": [], "jacobian": []}, {"mse": [], "jacobian": []}
    for seed in range(4):
        for loss in err:
            m = FlowMap(loss=loss, epochs=20, hidden=(64, 64), seed=seed).fit(
                data, jacobian=DF if loss == "jacobian" else None)
            lam = m.lyapunov(t_total=300.0, burn_in=5.0, qr_interval=0.01, seed=0).exponents
            err[loss].append(np.abs(lam.values - [0.906, 0.0, -14.572]))
            w1[loss].append(wasserstein1(m.generate(100_000, seed=seed).z.values, ref))
    mse, jac = np.array(err["mse"]), np.array(err["jacobian"])
    assert np.mean(mse[:, 2]) / 14.572 > 0.3
    assert np.all(jac[:, 2] / 14.572 < 0.02) and np.all(jac[:, 0] / 0.906 < 0.08)
    assert np.all(jac[:, 1] < 0.02)
    assert np.mean(w1["jacobian"]) < np.mean(w1["mse"])


def test_sampler_alignment_on_the_arc():
    """Arc (M = 2000, eps = 0.009, raw units), 200 chains x 30 steps: median angle between the
    leading finite-time vector and the arc's tangent, measured 0.7 deg (split-step,
    data-aware), 1.4 (split-step, constant noise), 5.1 (Langevin, constant noise)."""
    from xlangevin import samplers
    from xlangevin.systems import manifolds
    from xlangevin.tangent import sampler_lyapunov

    base = samplers.DiffusionMap(eps=0.009, standardize=False, seed=0).fit(
        manifolds.noisy_arc(2000, seed=0))
    tan = lambda P: np.stack([-P[:, 1], P[:, 0]], 1)      # noqa: E731
    angle = {}
    for scheme, noise in (("split-step", "data-aware"), ("langevin", "constant")):
        s = base.with_options(scheme=scheme, noise=noise)
        angle[scheme] = float(sampler_lyapunov(s, 200, 30, seed=0, tangent=tan).median_angle)
    assert angle["split-step"] < 2.0
    assert angle["split-step"] < angle["langevin"]
