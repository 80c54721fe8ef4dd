"""Stochastic Lorenz-63: exact vector field and Jacobian, reproducibility, stable statistics."""

import numpy as np
import pytest
import xarray as xr

from xlangevin.systems import lorenz63

# Reference statistics of the stochastic system (noise 5): 8 members x 5000 time units, Heun
# at dt = 1e-3 (and 5e-4, same within error): mean z = 24.57 +- 0.01, var x = 66.8, var y = 82.4,
# var z = 62.7 +- 0.3. (The deterministic attractor has mean z ~ 23.5; the noise raises it.)
REF = {"mean_z": 24.57, "var_x": 66.8, "var_y": 82.4, "var_z": 62.7}


def batch_stats(a, n_batches=10):
    """Mean and variance of the members' series with batch-means standard errors.

    a: (members, time). Batches of 100 time units are much longer than the correlation times
    (z: ~0.5; the lobe switching of x, y: a few units), so batch estimates are ~independent
    (checked: the spread of 32 member means of x over 1000 units, 0.34, matches these SEs).
    """
    m, n = a.shape
    b = a[:, : n // n_batches * n_batches].reshape(m * n_batches, -1)
    means, variances = b.mean(1), b.var(1)
    k = means.size
    return (means.mean(), means.std(ddof=1) / np.sqrt(k),
            a.var(), variances.std(ddof=1) / np.sqrt(k))


@pytest.fixture(scope="module")
def runs():
    kw = dict(n_samples=100_000, n_members=4, progress=False)  # 4 x 1000 time units per seed
    return lorenz63.simulate(seed=1, **kw), lorenz63.simulate(seed=2, **kw)


def test_drift_and_jacobian():
    rng = np.random.default_rng(0)
    u = rng.normal([0, 0, 25], [8, 9, 8], (40, 3))
    f = lorenz63.drift(u)
    out = np.empty(3)
    p = np.array([10.0, 28.0, 8.0 / 3.0, 5.0])
    for row, fr in zip(u, f):
        lorenz63._drift.py_func(row, p, out)
        np.testing.assert_allclose(out, fr, rtol=1e-14)
    np.testing.assert_allclose(lorenz63.drift([[1.0, 2.0, 3.0]]), [[10.0, 1 * 25 - 2, 2 - 8.0]])
    Jac = lorenz63.jacobian(u)
    assert Jac.shape == (40, 3, 3)
    h = 1e-6
    num = np.stack([(lorenz63.drift(u + h * e) - lorenz63.drift(u - h * e)) / (2 * h)
                    for e in np.eye(3)], -1)  # num[n, i, j] = d f_i / d x_j
    np.testing.assert_allclose(Jac, num, atol=1e-6)
    # trace = -(sigma + 1 + beta), the constant phase-space contraction rate
    np.testing.assert_allclose(np.trace(Jac, axis1=1, axis2=2), -(10 + 1 + 8 / 3))


def test_reproducible_from_seed():
    kw = dict(n_samples=500, n_members=2, progress=False)
    a, b, c = (lorenz63.simulate(seed=s, **kw) for s in (5, 5, 6))
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.x, c.x)
    assert set(a.data_vars) == {"x", "y", "z"} and a.z.dims == ("member", "time")


def test_statistics_stable_across_seeds(runs):
    stats = [{v: batch_stats(r[v].values) for v in "xyz"} for r in runs]
    for v in "xyz":
        (m1, se1, v1, sv1), (m2, se2, v2, sv2) = stats[0][v], stats[1][v]
        print(f"L63 {v}: mean {m1:.3f}+-{se1:.3f} / {m2:.3f}+-{se2:.3f}; "
              f"var {v1:.2f}+-{sv1:.2f} / {v2:.2f}+-{sv2:.2f}")
        # the two seeds agree within 5 combined standard errors
        assert abs(m1 - m2) < 5 * np.hypot(se1, se2)
        assert abs(v1 - v2) < 5 * np.hypot(sv1, sv2)
        for m, se, var, sv in (stats[0][v], stats[1][v]):
            # and with the long-run reference (its own error ~0.01 / 0.3 is added)
            assert abs(var - REF[f"var_{v}"]) < 5 * np.hypot(sv, 0.3)
            if v == "z":
                assert abs(m - REF["mean_z"]) < 5 * np.hypot(se, 0.01)
            else:  # x, y symmetric under (x, y) -> (-x, -y)
                assert abs(m) < 5 * se


def test_attrs(runs):
    a = runs[0].attrs
    assert a["equation"] == lorenz63.EQUATION
    assert (a["param_sigma"], a["param_rho"], a["param_beta"], a["param_noise"]) == \
        (10.0, 28.0, 8.0 / 3.0, 5.0)
    assert a["dt"] == 1e-3 and a["save_every"] == 10 and a["integrator"] == "heun"
    assert a["seed"] == "1"
    np.testing.assert_allclose(np.diff(runs[0].time.values), 0.01)


def test_streaming_equals_in_memory(tmp_path):
    kw = dict(n_samples=300, seed=3, progress=False)
    mem = lorenz63.simulate(**kw)
    disk = lorenz63.simulate(path=tmp_path / "l63.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)
    assert mem.x.dims == ("time",)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=-1e-3), "dt must be"),
    (dict(noise=-1.0), "noise"),
    (dict(x0=[1.0, 2.0]), "x0"),
    (dict(scheme="rk4"), "scheme"),
    (dict(rho=np.inf), "rho must be finite"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lorenz63.simulate(progress=False, **{"n_samples": 10, **kwargs})
