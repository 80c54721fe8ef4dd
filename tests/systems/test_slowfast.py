"""Slow–fast system of the diffusion-map paper: bimodal slow variable, fast Lorenz-63."""

import numpy as np
import pytest
import xarray as xr

from xlangevin.systems import slowfast


@pytest.fixture(scope="module")
def run():
    # 8 members from z = 0 with independent fast states: 8 x (1 + 10) model time units of RK4 at
    # dt = 2e-6 (4.4e7 steps, ~2 s on 2 cores)
    return slowfast.simulate(n_samples=100, n_members=8, z0=0.0, burn_in=1.0, seed=4,
                             progress=False)


def test_resolved_drift_and_vector_field():
    z = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(slowfast.slow_drift(z), z - z**3)
    assert slowfast.slow_drift(1.0) == 0 and slowfast.slow_drift(-1.0) == 0
    rng = np.random.default_rng(0)
    u = rng.normal([0, 0, 0, 25], [1, 8, 9, 8], (10, 4))
    for coupling, multiplicative in (("additive", 0.0), ("multiplicative", 1.0)):
        f = slowfast.drift(u, coupling=coupling)
        h = u[:, 0] if multiplicative else 1.0
        np.testing.assert_allclose(f[:, 0], slowfast.slow_drift(u[:, 0])
                                   + 4 / (90 * 0.01) * h * u[:, 2])
        np.testing.assert_allclose(f[:, 1], 1e4 * 10 * (u[:, 2] - u[:, 1]))
        p = np.array([1e4, 4 / (90 * 0.01), multiplicative, 0.0])
        out = np.empty(4)
        for row, fr in zip(u, f):
            slowfast._rhs.py_func(row, p, out)
            np.testing.assert_allclose(out, fr, rtol=1e-12)


def test_additive_coupling_is_bimodal(run):
    z = run.z.values  # (member, time)
    late = z[:, 20:]  # after 2 model time units (relaxation time 1/2)
    side = np.sign(late.mean(1))
    print(f"slowfast: members settled at {side}; median |z| = {np.median(np.abs(late)):.3f}; "
          f"std about the wells = {np.abs(late).std():.3f}")
    # from z = 0 the fast forcing pushes members into BOTH wells (symmetric bimodal law)
    assert (side > 0).sum() >= 1 and (side < 0).sum() >= 1
    # the modes are at z = +-1 (zeros of the resolved drift); long runs give median |z| ~ 0.94,
    # spread ~0.21 (homogenized noise)
    assert 0.8 < np.median(np.abs(late)) < 1.1
    assert 0.1 < np.abs(late).std() < 0.35


def test_fast_variables_on_the_lorenz_attractor(run):
    y = run.y.values  # (member, time, c)
    assert run.y.dims == ("member", "time", "c")
    # samples are 0.1 model time = 1000 Lorenz time units apart: independent. 800 samples:
    # SE of mean y3 = sqrt(var ~ 63) / sqrt(800) ~ 0.3; Lorenz-63 attractor mean y3 = 23.55.
    assert abs(y[..., 2].mean() - 23.55) < 1.5
    assert abs(y[..., 0].mean()) < 1.5
    assert 60 < y[..., 1].var() < 100  # attractor: var y2 ~ 80


def test_reproducible_and_attrs(run):
    kw = dict(n_samples=20, burn_in=0.5, seed=11, progress=False)
    a, b, c = (slowfast.simulate(**{**kw, "seed": s}) for s in (11, 11, 12))
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.z, c.z)
    assert a.z.dims == ("time",)
    np.testing.assert_allclose(np.diff(a.time.values), 0.1)
    at = run.attrs
    assert at["equation"] == slowfast.EQUATION and at["integrator"] == "rk4"
    assert at["param_eps2"] == 1e-4 and at["param_coupling"] == "additive"
    assert at["dt"] == 2e-6 and at["save_every"] == 50_000 and at["seed"] == "4"


def test_multiplicative_coupling_keeps_the_sign():
    ds = slowfast.simulate(n_samples=30, n_members=2, z0=[0.5, -0.5], burn_in=0.5, seed=1,
                           coupling="multiplicative", progress=False)
    z = ds.z.values
    assert np.all(z[0] > 0) and np.all(z[1] < 0)  # h(z) = z: z = 0 is never crossed
    assert ds.attrs["param_coupling"] == "multiplicative"


def test_streaming_equals_in_memory(tmp_path):
    kw = dict(n_samples=10, burn_in=0.1, seed=2, progress=False, n_members=2)
    mem = slowfast.simulate(**kw)
    disk = slowfast.simulate(path=tmp_path / "sf.nc", **kw)
    xr.testing.assert_identical(disk.load(), mem)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dt=-1e-6), "dt must be"),
    (dict(dt=1e-4), "too large"),
    (dict(coupling="linear"), "coupling"),
    (dict(eps2=0.0), "eps2"),
    (dict(n_members=2, z0=[0.1, 0.2, 0.3]), "z0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        slowfast.simulate(progress=False, **{"n_samples": 10, **kwargs})
