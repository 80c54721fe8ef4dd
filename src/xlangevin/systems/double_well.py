"""1-D double well: ``dx = (x - x^3) dt + sqrt(2) dW``.

Score ``s(x) = x - x^3``; stationary density ``p(x) ∝ exp(-(1 - x^2)^2 / 4)`` (METHODS.md §6).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import integrate

from ._sde import SDESystem, check_run_args, provenance, run_sde

EQUATION = "dx = (x - x^3) dt + sqrt(2) dW"


@numba.njit(inline="always")
def _drift(x, p, out):
    out[0] = x[0] - x[0] ** 3


@numba.njit(inline="always")
def _noise(x, p, xi, out):
    out[0] = math.sqrt(2.0) * xi[0]


@numba.njit(inline="always")
def _tangent(x, p, V, out):
    for j in range(V.shape[1]):
        out[0, j] = (1.0 - 3.0 * x[0] * x[0]) * V[0, j]


def tangent_system(scheme: str = "euler"):
    """The numba drift, noise and tangent as an :class:`SDESystem` (x0 = 0)."""
    return SDESystem("double_well", _drift, _noise, np.zeros(1), n_noise=1, scheme=scheme,
                     tangent=_tangent, x0=np.zeros(1))


def jacobian(x):
    """Exact Jacobian ``1 - 3 x^2`` of the drift, shape (n, 1, 1)."""
    x = np.asarray(x, dtype=float).reshape(-1, 1)
    return (1.0 - 3.0 * x**2)[:, :, None]


def drift(x):
    """Exact drift f(x) = x - x^3 for ``x`` of shape (n, 1) or (n,)."""
    x = np.asarray(x, dtype=float)
    return x - x**3


score = drift  # the noise is sqrt(2) dW, so the drift is the score


def log_density_unnormalized(x):
    """log p(x) + const = -(1 - x^2)^2 / 4."""
    x = np.asarray(x, dtype=float)
    return -((1.0 - x**2) ** 2) / 4.0


_NORM = integrate.quad(lambda t: math.exp(-((1 - t * t) ** 2) / 4), -np.inf, np.inf)[0]


def density(x):
    """Normalized stationary density p(x)."""
    return np.exp(log_density_unnormalized(x)) / _NORM


def simulate(n_samples: int = 100_000, dt: float = 1e-3, save_every: int = 100,
             burn_in: float = 10.0, n_members: int | None = None, x0=None, seed=None,
             progress: bool = True, path=None,
             overwrite: bool = False, scheme: str = "euler"):
    """Simulate the double well and return an ``xr.Dataset`` with ``x(time)``.

    Parameters
    ----------
    n_samples : number of saved samples per member.
    dt : integration step (model time units); samples are ``dt * save_every`` apart.
    burn_in : model time integrated and discarded before the first saved sample.
    n_members : ensemble size; ``None`` gives no ``member`` dim (one trajectory).
    x0 : initial state(s), scalar or (n_members,); default ``0``.
    seed : seed of the ``numpy.random.Generator`` that draws all the noise.
    path : if given, stream the trajectory to this NetCDF file (written atomically) and return
        the Dataset opened lazily from it.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    """
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    x0 = np.broadcast_to(np.asarray(0.0 if x0 is None else x0, float).reshape(-1, 1), (m, 1))
    system = tangent_system(scheme)
    attrs = provenance("double_well", EQUATION, {}, dt, save_every, scheme, seed, burn_in,
                       extra={"score": "x - x^3", "stationary_density": "exp(-(1 - x^2)^2 / 4)"})
    writer = dict(variables={"x": ((), slice(0, 1))}, coords={},
                  keep_member_dim=n_members is not None,
                  attrs=attrs, var_attrs={"x": {"long_name": "double-well coordinate"}})
    return run_sde(system, x0, n_samples, dt, save_every, burn_in, seed, writer,
                   progress=progress, path=path, overwrite=overwrite)
