r"""Stochastic Lorenz-63 with additive noise (METHODS.md §6).

    dx = sigma (y - x) dt + s dW1
    dy = (x (rho - z) - y) dt + s dW2
    dz = (x y - beta z) dt + s dW3

with sigma = 10, rho = 28, beta = 8/3 and noise amplitude s = 5 on each component. Integrated
with the stochastic Heun scheme (second order in the stiff chaotic drift; the noise is additive)
at dt = 1e-3, saved every 10 steps (data spacing 0.01).
"""

from __future__ import annotations

import numba
import numpy as np

from ._sde import SDESystem, check_run_args, provenance, run_sde

EQUATION = ("dx = sigma (y - x) dt + s dW1; dy = (x (rho - z) - y) dt + s dW2; "
            "dz = (x y - beta z) dt + s dW3")
DEFAULTS = dict(sigma=10.0, rho=28.0, beta=8.0 / 3.0, noise=5.0)
_ORDER = ("sigma", "rho", "beta", "noise")


@numba.njit(inline="always")
def _drift(u, p, out):
    x, y, z = u[0], u[1], u[2]
    out[0] = p[0] * (y - x)
    out[1] = x * (p[1] - z) - y
    out[2] = x * y - p[2] * z


@numba.njit(inline="always")
def _noise(u, p, xi, out):
    s = p[3]
    out[0] = s * xi[0]
    out[1] = s * xi[1]
    out[2] = s * xi[2]


@numba.njit(inline="always")
def _tangent(u, p, V, out):
    # out = Df(u) V for V of shape (3, k)
    x, y, z = u[0], u[1], u[2]
    for j in range(V.shape[1]):
        out[0, j] = p[0] * (V[1, j] - V[0, j])
        out[1, j] = (p[1] - z) * V[0, j] - V[1, j] - x * V[2, j]
        out[2, j] = y * V[0, j] + x * V[1, j] - p[2] * V[2, j]


def _params(sigma, rho, beta, noise):
    prm = dict(sigma=float(sigma), rho=float(rho), beta=float(beta), noise=float(noise))
    for k, v in prm.items():
        if not np.isfinite(v):
            raise ValueError(f"{k} must be finite, got {v}")
    if prm["noise"] < 0:
        raise ValueError(f"noise amplitude must be >= 0, got {prm['noise']}")
    return prm


def _u(x):
    x = np.asarray(x, dtype=float)
    if x.shape[-1] != 3:
        raise ValueError(f"states must have shape (n, 3), got {x.shape}")
    return x


def drift(x, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    """Exact Lorenz-63 vector field for states ``x`` of shape (n, 3)."""
    u = _u(x)
    X, Y, Z = u[..., 0], u[..., 1], u[..., 2]
    return np.stack([sigma * (Y - X), X * (rho - Z) - Y, X * Y - beta * Z], axis=-1)


def jacobian(x, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    """Exact Jacobian ``J[n, i, j] = d f_i / d x_j`` of the drift, shape (n, 3, 3)."""
    u = _u(x)
    X, Y, Z = u[..., 0], u[..., 1], u[..., 2]
    J = np.zeros(u.shape[:-1] + (3, 3))
    J[..., 0, 0] = -sigma
    J[..., 0, 1] = sigma
    J[..., 1, 0] = rho - Z
    J[..., 1, 1] = -1.0
    J[..., 1, 2] = -X
    J[..., 2, 0] = Y
    J[..., 2, 1] = X
    J[..., 2, 2] = -beta
    return J


def tangent_system(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
                   noise: float = 5.0, scheme: str = "heun"):
    """The numba drift, noise and tangent ``Df(x) V`` as an :class:`SDESystem` (for
    :func:`xlangevin.lyapunov`); default initial state (1, 1, 25)."""
    prm = _params(sigma, rho, beta, noise)
    return SDESystem("lorenz63", _drift, _noise, np.array([prm[k] for k in _ORDER]), n_noise=3,
                     scheme=scheme, tangent=_tangent, x0=np.array([1.0, 1.0, 25.0]))


def simulate(n_samples: int = 100_000, dt: float = 1e-3, save_every: int = 10,
             burn_in: float = 20.0, n_members: int | None = None, x0=None, seed=None,
             sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0,
             noise: float = 5.0, progress: bool = True, path=None,
             overwrite: bool = False, scheme: str = "heun"):
    """Simulate stochastic Lorenz-63; return an ``xr.Dataset`` with ``x``, ``y``, ``z`` (time).

    Parameters
    ----------
    n_samples : saved samples per member (spacing ``dt * save_every``, default 0.01).
    dt : integration step (default 1e-3).
    burn_in : model time integrated and discarded (default 20, onto the attractor).
    n_members : ensemble size; ``None`` gives no ``member`` dim.
    x0 : initial state (3,) or (n_members, 3); default (1, 1, 25).
    seed : seed of the noise generator.
    sigma, rho, beta : Lorenz parameters; noise : additive noise amplitude on each component.
    path : if given, stream to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    scheme : ``"heun"`` (default) or ``"euler"``.
    """
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    prm = _params(sigma, rho, beta, noise)
    x0 = np.asarray(np.array([1.0, 1.0, 25.0]) if x0 is None else x0, dtype=float)
    if x0.shape not in ((3,), (m, 3)):
        raise ValueError(f"x0 must have shape (3,) or (n_members, 3) = ({m}, 3), got {x0.shape}")
    x0 = np.broadcast_to(x0.reshape(-1, 3), (m, 3))
    system = tangent_system(**prm, scheme=scheme)
    attrs = provenance("lorenz63", EQUATION, prm, dt, save_every, scheme, seed, burn_in)
    writer = dict(variables={"x": ((), slice(0, 1)), "y": ((), slice(1, 2)),
                             "z": ((), slice(2, 3))},
                  coords={}, keep_member_dim=n_members is not None, attrs=attrs,
                  var_attrs={v: {"long_name": f"Lorenz-63 {v}"} for v in "xyz"})
    return run_sde(system, x0, n_samples, dt, save_every, burn_in, seed, writer,
                   progress=progress, path=path, overwrite=overwrite)
