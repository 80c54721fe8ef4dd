r"""Deterministic slow–fast system of the diffusion-map paper (METHODS.md §6, paper 003).

    dz/dt = z (1 - z^2) + (4 / (90 eps)) h(z) y_2
    dy/dt = L63(y) / eps^2,       L63(y) = (10 (y2 - y1), 28 y1 - y2 - y1 y3, y1 y2 - 8/3 y3)

with eps^2 = 1e-4 and ``h(z) = 1`` (``coupling="additive"``: the homogenized slow dynamics is the
bimodal ``dz = z (1 - z^2) dt + sqrt(2 D) dW``) or ``h(z) = z`` (``coupling="multiplicative"``:
unimodal, z keeps its sign). The resolved part of the slow drift, :func:`slow_drift`
``= z (1 - z^2)``, is what a subgrid closure adds its model to.

Integration: classical RK4 (a dedicated numba loop; the system has no noise). The fast Lorenz-63
runs on the time scale ``eps^2``: with ``dt = 2e-6`` model time the fast step is
``h = dt / eps^2 = 0.02`` Lorenz time units. Measured attractor statistics of RK4 over 2000 Lorenz
units (exact: mean y3 ~ 23.5, var y2 ~ 80): h = 0.01 -> 23.51 / 81.8; h = 0.02 -> 23.60 / 82.6;
h = 0.05 -> 24.16 / 82.1 (biased); h = 0.1 -> 23.72 / 74.0 (distorted); h = 0.2 blows up. So
model-time steps of 1e-5 .. 5e-5 (h = 0.1 .. 0.5) are NOT usable at eps^2 = 1e-4; ``simulate``
refuses h > 0.1. Cost trade-off: one model time unit is ``1 / dt = 5e5`` RK4 steps, so the
default 10^4 samples at spacing 0.1 (1000 model time units, 5e8 steps) take ~17 s per member on
one core (members run in parallel); ``dt = 5e-6`` is 2.5x faster at the price of the h = 0.05
bias above.

Randomness only enters the initial condition: ``seed`` draws a perturbation of the fast state,
which is then burnt in on the attractor (``fast_burn_in`` Lorenz time units, frozen z) before the
coupled burn-in (``burn_in`` model time units).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._sde import SDESystem, TrajectoryWriter, check_run_args, provenance, record_chunks

EQUATION = ("dz/dt = z (1 - z^2) + (4 / (90 eps)) h(z) y2; dy/dt = L63(y) / eps^2, "
            "L63 = (10 (y2 - y1), 28 y1 - y2 - y1 y3, y1 y2 - 8/3 y3); h = 1 (additive) or z "
            "(multiplicative)")
COUPLINGS = ("additive", "multiplicative")


def slow_drift(z):
    """Resolved slow drift ``z (1 - z^2)`` (any shape)."""
    z = np.asarray(z, dtype=float)
    return z * (1.0 - z * z)


def drift(u, eps2: float = 1e-4, coupling: str = "additive"):
    """Exact vector field for full states ``u = (z, y1, y2, y3)`` of shape (n, 4)."""
    u = np.asarray(u, dtype=float)
    if u.shape[-1] != 4:
        raise ValueError(f"states must have shape (n, 4) = (z, y1, y2, y3), got {u.shape}")
    _check_coupling(coupling)
    eps = math.sqrt(eps2)
    z, y1, y2, y3 = (u[..., i] for i in range(4))
    h = np.ones_like(z) if coupling == "additive" else z
    dz = slow_drift(z) + 4.0 / (90.0 * eps) * h * y2
    dy = np.stack([10.0 * (y2 - y1), 28.0 * y1 - y2 - y1 * y3, y1 * y2 - 8.0 / 3.0 * y3], -1)
    return np.concatenate([dz[..., None], dy / eps2], axis=-1)


def jacobian(u, eps2: float = 1e-4, coupling: str = "additive"):
    """Exact Jacobian of :func:`drift`, shape (n, 4, 4)."""
    u = np.asarray(u, dtype=float)
    if u.shape[-1] != 4:
        raise ValueError(f"states must have shape (n, 4) = (z, y1, y2, y3), got {u.shape}")
    _check_coupling(coupling)
    g = 4.0 / (90.0 * math.sqrt(eps2))
    z, y1, y2, y3 = (u[..., i] for i in range(4))
    D = np.zeros(u.shape[:-1] + (4, 4))
    D[..., 0, 0] = 1.0 - 3.0 * z * z + (g * y2 if coupling == "multiplicative" else 0.0)
    D[..., 0, 2] = g * (z if coupling == "multiplicative" else 1.0)
    D[..., 1:, 1:] = jacobian_l63(u[..., 1:]) / eps2
    return D


def jacobian_l63(y):
    """Jacobian of the fast Lorenz-63 field (10, 28, 8/3) at ``y`` (n, 3) -> (n, 3, 3)."""
    y1, y2, y3 = (y[..., i] for i in range(3))
    D = np.zeros(y.shape[:-1] + (3, 3))
    D[..., 0, 0], D[..., 0, 1] = -10.0, 10.0
    D[..., 1, 0], D[..., 1, 1], D[..., 1, 2] = 28.0 - y3, -1.0, -y1
    D[..., 2, 0], D[..., 2, 1], D[..., 2, 2] = y2, y1, -8.0 / 3.0
    return D


def _check_coupling(coupling):
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")


@numba.njit(inline="always")
def _rhs(u, p, out):
    # p = [1/eps^2, 4/(90 eps), multiplicative, fast_only]
    z, y1, y2, y3 = u[0], u[1], u[2], u[3]
    h = z if p[2] > 0.5 else 1.0
    out[0] = 0.0 if p[3] > 0.5 else z * (1.0 - z * z) + p[1] * h * y2
    s = p[0]
    out[1] = s * (10.0 * (y2 - y1))
    out[2] = s * (28.0 * y1 - y2 - y1 * y3)
    out[3] = s * (y1 * y2 - (8.0 / 3.0) * y3)


@numba.njit(inline="always")
def _tangent(u, p, V, out):
    z, y1, y2, y3 = u[0], u[1], u[2], u[3]
    mult = p[2] > 0.5
    dzz = 1.0 - 3.0 * z * z + (p[1] * y2 if mult else 0.0)
    dzy = p[1] * (z if mult else 1.0)
    s = p[0]
    for j in range(V.shape[1]):
        out[0, j] = 0.0 if p[3] > 0.5 else dzz * V[0, j] + dzy * V[2, j]
        out[1, j] = s * 10.0 * (V[2, j] - V[1, j])
        out[2, j] = s * ((28.0 - y3) * V[1, j] - V[2, j] - y1 * V[3, j])
        out[3, j] = s * (y2 * V[1, j] + y1 * V[2, j] - (8.0 / 3.0) * V[3, j])


@numba.njit(inline="always")
def _no_noise(u, p, xi, out):
    for c in range(out.shape[0]):
        out[c] = 0.0


def _pvec(eps2, coupling):
    _check_coupling(coupling)
    eps2 = float(eps2)
    if not (np.isfinite(eps2) and eps2 > 0):
        raise ValueError(f"eps2 must be a positive finite number, got {eps2}")
    return np.array([1.0 / eps2, 4.0 / (90.0 * math.sqrt(eps2)),
                     1.0 if coupling == "multiplicative" else 0.0, 0.0])


def tangent_system(eps2: float = 1e-4, coupling: str = "additive"):
    """The (noise-free) vector field and its tangent as an :class:`SDESystem`; x0 = (0.5, 1, 1,
    25)."""
    return SDESystem("slowfast", _rhs, _no_noise, _pvec(eps2, coupling), n_noise=0,
                     tangent=_tangent, x0=np.array([0.5, 1.0, 1.0, 25.0]))


@numba.njit(parallel=True)
def _rk4_chunk(x, p, dt, n_save, save_every, out):
    # x (m, 4) advanced in place; out (n_save, m, 4)
    m = x.shape[0]
    for r in numba.prange(m):
        u = x[r].copy()
        k1 = np.empty(4)
        k2 = np.empty(4)
        k3 = np.empty(4)
        k4 = np.empty(4)
        t = np.empty(4)
        for i in range(n_save):
            for _ in range(save_every):
                _rhs(u, p, k1)
                for c in range(4):
                    t[c] = u[c] + 0.5 * dt * k1[c]
                _rhs(t, p, k2)
                for c in range(4):
                    t[c] = u[c] + 0.5 * dt * k2[c]
                _rhs(t, p, k3)
                for c in range(4):
                    t[c] = u[c] + dt * k3[c]
                _rhs(t, p, k4)
                for c in range(4):
                    u[c] += dt / 6.0 * (k1[c] + 2.0 * k2[c] + 2.0 * k3[c] + k4[c])
            for c in range(4):
                out[i, r, c] = u[c]
        for c in range(4):
            x[r, c] = u[c]


def _advance(x, p, dt, n_steps, chunk=1_000_000):
    """Advance ``x`` by ``n_steps`` RK4 steps, saving nothing."""
    scratch = np.empty((1, x.shape[0], 4))
    left = n_steps
    while left > 0:
        s = min(left, chunk)
        _rk4_chunk(x, p, dt, 1, s, scratch)
        left -= s


def simulate(n_samples: int = 10_000, dt: float = 2e-6, save_every: int = 50_000,
             burn_in: float = 5.0, n_members: int | None = None, z0=None, seed=None,
             eps2: float = 1e-4, coupling: str = "additive", fast_burn_in: float = 50.0,
             progress: bool = True, path=None,
             overwrite: bool = False):
    """Simulate the slow–fast system; return ``z(time)`` and the fast ``y(time, c)``.

    Parameters
    ----------
    n_samples : saved samples per member (spacing ``dt * save_every``, default 0.1).
    dt : RK4 step in model time units (default 2e-6: fast step ``dt / eps2 = 0.02``).
    save_every : steps between saved samples (default 50 000 -> spacing 0.1).
    burn_in : coupled model time integrated and discarded (default 5).
    n_members : ensemble size; ``None`` gives no ``member`` dim.
    z0 : initial slow state, scalar or (n_members,); default 0.5 (additive) / 0.5
        (multiplicative; must be nonzero there since z = 0 is invariant).
    seed : seeds the perturbation of the fast initial state (the only randomness).
    eps2 : time-scale separation eps^2 (default 1e-4).
    coupling : ``"additive"`` (h = 1, bimodal) or ``"multiplicative"`` (h = z, unimodal).
    fast_burn_in : Lorenz time units the fast system alone is integrated (z frozen) first, to
        start on the attractor.
    path : if given, stream to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    """
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    _check_coupling(coupling)
    eps2 = float(eps2)
    if not (np.isfinite(eps2) and eps2 > 0):
        raise ValueError(f"eps2 must be a positive finite number, got {eps2}")
    if fast_burn_in < 0:
        raise ValueError(f"fast_burn_in must be >= 0, got {fast_burn_in}")
    if dt / eps2 > 0.1:
        raise ValueError(f"dt / eps2 = {dt / eps2:.3g} Lorenz time units per RK4 step is too "
                         f"large for the fast Lorenz-63 (RK4 distorts the attractor above ~0.05 "
                         f"and blows up near 0.2; 0.02 is accurate): use dt <= {0.1 * eps2:.3g}")
    z0 = np.asarray(0.5 if z0 is None else z0, dtype=float).reshape(-1)
    if z0.shape[0] not in (1, m):
        raise ValueError(f"z0 must be a scalar or have n_members={m} entries, got {z0.shape}")
    rng = np.random.default_rng(seed)
    x = np.empty((m, 4))
    x[:, 0] = z0
    x[:, 1:] = np.array([1.0, 1.0, 25.0]) + rng.standard_normal((m, 3))
    eps = math.sqrt(eps2)
    p = np.array([1.0 / eps2, 4.0 / (90.0 * eps),
                  1.0 if coupling == "multiplicative" else 0.0, 0.0])
    # fast-only burn-in onto the attractor (z frozen): fast_burn_in Lorenz units
    p_fast = p.copy()
    p_fast[3] = 1.0
    _advance(x, p_fast, dt, int(round(fast_burn_in * eps2 / dt)))
    _advance(x, p, dt, int(round(burn_in / dt)))
    prm = dict(eps2=eps2, coupling=coupling, sigma=10.0, rho=28.0, beta=8.0 / 3.0,
               coupling_coefficient=4.0 / (90.0 * eps), fast_burn_in=float(fast_burn_in))
    attrs = provenance("slowfast", EQUATION, prm, dt, save_every, "rk4", seed, burn_in,
                       extra={"resolved_slow_drift": "z (1 - z^2)"})
    writer = TrajectoryWriter(
        variables={"z": ((), slice(0, 1)), "y": (("c",), slice(1, 4))},
        coords={"c": np.arange(3)}, n_members=m, keep_member_dim=n_members is not None,
        n_samples=n_samples, sample_interval=dt * save_every,
        t0=int(round(burn_in / dt)) * dt + dt * save_every, attrs=attrs, path=path,
        overwrite=overwrite,
        var_attrs={"z": {"long_name": "slow variable"},
                   "y": {"long_name": "fast Lorenz-63 variables"}})
    chunk = max(1, min(n_samples, 1_000_000 // save_every + 1, 512))
    def advance(n):
        out = np.empty((n, m, 4))
        _rk4_chunk(x, p, dt, n, save_every, out)
        return out

    return record_chunks(writer, advance, n_samples, chunk, "slowfast", progress,
                         steps_per_sample=save_every)
