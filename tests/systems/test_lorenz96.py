"""Two-scale stochastic Lorenz-96: exact drift, ring topology, reproducibility, statistics."""

import numpy as np
import pytest
import xarray as xr

from xlangevin.systems import lorenz96

K, J = 4, 10
# Reference (F = 4, global fast ring): 8 members x 1000 time units, Heun dt = 5e-4:
# mean x = 1.823 +- 0.005, var x = 8.51 +- 0.02 (per-member estimates; dt = 2.5e-4 and 2e-3
# agree within error). Correlation time of x_k ~ 0.7 time units.
REF_MEAN, REF_VAR = 1.823, 8.51


def manual_drift(u, F=4.0, nu=1.0, c=10.0, b=10.0, ring="global"):
    """Loop-by-loop transcription of METHODS.md §6 (independent of the module's roll code)."""
    c1 = c / b
    x, y = u[:K], u[K:].reshape(K, J)
    dx = np.empty(K)
    for k in range(K):
        dx[k] = (-x[(k - 1) % K] * (x[(k - 2) % K] - x[(k + 1) % K]) - nu * x[k] + F
                 + c1 * y[k].sum())
    dy = np.empty((K, J))
    flat = y.ravel()
    for k in range(K):
        for j in range(J):
            if ring == "global":
                i = k * J + j
                yp1, yp2, ym1 = (flat[(i + s) % (K * J)] for s in (1, 2, -1))
            else:
                yp1, yp2, ym1 = (y[k, (j + s) % J] for s in (1, 2, -1))
            dy[k, j] = -c * b * yp1 * (yp2 - ym1) - c * nu * y[k, j] + c1 * x[k]
    return np.concatenate([dx, dy.ravel()])


@pytest.mark.parametrize("ring", ["global", "sector"])
def test_drift_matches_equations(ring):
    rng = np.random.default_rng(0)
    u = rng.standard_normal((6, K + K * J))
    f = lorenz96.drift(u, fast_ring=ring)
    p = lorenz96._pvec(lorenz96._params(K, J, 4.0, 1.0, 10.0, 10.0, None, 0.2, 0.2, ring))
    out = np.empty(K + K * J)
    for row, fr in zip(u, f):
        np.testing.assert_allclose(fr, manual_drift(row, ring=ring), rtol=1e-12, atol=1e-12)
        lorenz96._drift.py_func(row, p, out)
        np.testing.assert_allclose(out, fr, rtol=1e-12, atol=1e-12)


def test_global_ring_couples_neighbouring_sectors():
    # d y_{0,J-1} / d y_{1,0} != 0 only for the global ring (y_{0,J} is y_{1,0})
    # d(dy_{0,J-1})/d y_{1,0} = -c b (y_{j+2} - y_{j-1}) = -c b (y_{1,1} - y_{0,J-2}) = -100
    u = np.zeros(K + K * J)
    u[K + J + 1] = 1.0  # y_{1,1}: the "j+2" neighbour of y_{0,J-1} in the global ring
    e = np.zeros_like(u)
    e[K + J] = 1.0  # perturb y_{1,0}
    for ring, coupled in (("global", True), ("sector", False)):
        d = (lorenz96.drift(u + e, fast_ring=ring) - lorenz96.drift(u, fast_ring=ring))[K + J - 1]
        assert (abs(d) > 1.0) == coupled, (ring, d)


@pytest.fixture(scope="module")
def runs():
    kw = dict(n_samples=30_000, n_members=2, progress=False)  # 2 x 150 time units per seed
    return lorenz96.simulate(seed=1, **kw), lorenz96.simulate(seed=2, **kw)


def test_dims_coords_attrs(runs):
    ds = runs[0]
    assert ds.x.dims == ("member", "time", "k") and ds.y.dims == ("member", "time", "k", "j")
    np.testing.assert_array_equal(ds.k, np.arange(K))
    np.testing.assert_array_equal(ds.j, np.arange(J))
    np.testing.assert_allclose(np.diff(ds.time.values), 0.005)
    a = ds.attrs
    assert a["equation"] == lorenz96.EQUATION
    for k, v in dict(K=4, J=10, F=4.0, nu=1.0, c=10.0, b=10.0, c1=1.0, noise_x=0.2,
                     noise_y=0.2, fast_ring="global").items():
        assert a[f"param_{k}"] == v
    assert a["dt"] == 5e-4 and a["save_every"] == 10 and a["integrator"] == "heun"
    assert a["seed"] == "1"
    assert np.all(np.isfinite(ds.x)) and float(np.abs(ds.y).max()) < 5  # stable at dt 5e-4


def test_reproducible_from_seed():
    kw = dict(n_samples=200, progress=False)
    a, b, c = (lorenz96.simulate(seed=s, **kw) for s in (4, 4, 5))
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.x, c.x)


def batch_stats(x, n_batches=10):
    """Mean and variance of x (members, time, k), batch-means standard errors: batches of 15
    time units >> the 0.7 correlation time, so the 20 batches per seed are ~independent."""
    m, n, _ = x.shape
    b = x[:, : n // n_batches * n_batches].reshape(m * n_batches, -1, x.shape[-1])
    means, variances = b.mean(axis=(1, 2)), b.var(axis=1).mean(1)
    k = means.size
    return means.mean(), means.std(ddof=1) / np.sqrt(k), x.var(axis=1).mean(), \
        variances.std(ddof=1) / np.sqrt(k)


def test_slow_statistics_stable_across_seeds(runs):
    (m1, s1, v1, sv1), (m2, s2, v2, sv2) = (batch_stats(r.x.values) for r in runs)
    print(f"L96 mean x: {m1:.3f}+-{s1:.3f} / {m2:.3f}+-{s2:.3f} (ref {REF_MEAN}); "
          f"var x: {v1:.2f}+-{sv1:.2f} / {v2:.2f}+-{sv2:.2f} (ref {REF_VAR})")
    assert abs(m1 - m2) < 5 * np.hypot(s1, s2)
    assert abs(v1 - v2) < 5 * np.hypot(sv1, sv2)
    for m, s, v, sv in ((m1, s1, v1, sv1), (m2, s2, v2, sv2)):
        # (+ the reference's own error; the record variance's bias ~2 tau / T ~ 1% is added)
        assert abs(m - REF_MEAN) < 5 * s + 0.01
        assert abs(v - REF_VAR) < 5 * sv + 0.01 * REF_VAR


def test_streaming_equals_in_memory(tmp_path):
    kw = dict(n_samples=150, n_members=2, seed=7, progress=False, F=6.0, fast_ring="sector")
    mem = lorenz96.simulate(**kw)
    disk = lorenz96.simulate(path=tmp_path / "l96.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)
    assert mem.attrs["param_F"] == 6.0 and mem.attrs["param_fast_ring"] == "sector"


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=-5e-4), "dt must be"),
    (dict(K=3), "K must be"),
    (dict(J=0), "J must be"),
    (dict(fast_ring="ring"), "fast_ring"),
    (dict(noise_y=-0.1), "noise"),
    (dict(x0=np.zeros(10)), "x0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lorenz96.simulate(progress=False, **{"n_samples": 10, **kwargs})
