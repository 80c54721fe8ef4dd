r"""2-D asymmetric double-well potential with an optional rotational drift (METHODS.md §6).

    U(x) = sum_i (x_i^2 - A_i^2)^2 + B_i x_i,      A = (1, 1.2),  B = (0.6, 0.3),
    dx = -(I + C J) grad U(x) dt + sqrt(2) dW,      J = [[0, -1], [1, 0]].

``C = 0`` (default) is the reversible gradient system; ``C = 0.8`` is the rotational variant with
true ``Phi = I + C J = [[1, -0.8], [0.8, 1]]`` and ``Sigma = I`` in the Langevin form
``dx = Phi s(x) dt + sqrt(2) Sigma dW`` (METHODS.md §0).

Invariant density for every C
-----------------------------
``p ∝ exp(-U)`` is stationary for all C: the Fokker–Planck flux is
``j = -(I + C J) grad U p - grad p = -C J grad U p`` (the symmetric part cancels because
``grad p = -p grad U``), and ``div(p J grad U) = J grad U . grad p + p div(J grad U)
= -p grad U . J grad U + p (-d1 d2 U + d2 d1 U) = 0`` (J is antisymmetric; mixed partials
commute). Hence the score is ``s = -grad U`` whatever C is.

``U`` is separable, so ``p`` is a product of the exact 1-D marginals
``p_i(x_i) ∝ exp(-(x_i^2 - A_i^2)^2 - B_i x_i)``, normalized by adaptive quadrature.

Integration: stochastic Heun (additive noise) with ``dt = 1e-3``, saved every 10 steps, i.e. the
paper's data spacing 0.01.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import integrate

from ._sde import SDESystem, check_run_args, provenance, run_sde

A_DEFAULT = (1.0, 1.2)
B_DEFAULT = (0.6, 0.3)
J = np.array([[0.0, -1.0], [1.0, 0.0]])
EQUATION = ("dx = -(I + C J) grad U dt + sqrt(2) dW, U = sum_i (x_i^2 - A_i^2)^2 + B_i x_i, "
            "J = [[0, -1], [1, 0]]")


@numba.njit(inline="always")
def _drift(x, p, out):
    # p = [A0, A1, B0, B1, C]
    g0 = 4.0 * x[0] * (x[0] * x[0] - p[0] * p[0]) + p[2]
    g1 = 4.0 * x[1] * (x[1] * x[1] - p[1] * p[1]) + p[3]
    C = p[4]
    # -(I + C J) g, (J g) = (-g1, g0)
    out[0] = -(g0 - C * g1)
    out[1] = -(g1 + C * g0)


@numba.njit(inline="always")
def _noise(x, p, xi, out):
    s = math.sqrt(2.0)
    out[0] = s * xi[0]
    out[1] = s * xi[1]


@numba.njit(inline="always")
def _tangent(x, p, V, out):
    # Df = -(I + C J) H with H = diag(12 x_i^2 - 4 A_i^2) the Hessian of U
    h0 = 12.0 * x[0] * x[0] - 4.0 * p[0] * p[0]
    h1 = 12.0 * x[1] * x[1] - 4.0 * p[1] * p[1]
    C = p[4]
    for j in range(V.shape[1]):
        out[0, j] = -(h0 * V[0, j] - C * h1 * V[1, j])
        out[1, j] = -(C * h0 * V[0, j] + h1 * V[1, j])


def _ab(A, B):
    A = np.asarray(A_DEFAULT if A is None else A, dtype=float)
    B = np.asarray(B_DEFAULT if B is None else B, dtype=float)
    if A.shape != (2,) or B.shape != (2,):
        raise ValueError(f"A and B must each have 2 entries, got shapes {A.shape} and {B.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("A and B must be finite")
    return A, B


def _x2(x):
    x = np.asarray(x, dtype=float)
    if x.shape[-1] != 2:
        raise ValueError(f"x must have shape (n, 2), got {x.shape}")
    return x


def true_phi(C: float = 0.0) -> np.ndarray:
    """Mobility ``Phi = I + C J`` of the Langevin form (physical units)."""
    return np.eye(2) + float(C) * J


def true_sigma() -> np.ndarray:
    """Noise factor ``Sigma = I`` (``Sigma Sigma^T = Phi_S = I``)."""
    return np.eye(2)


def potential(x, A=None, B=None):
    """U(x) for ``x`` of shape (n, 2) -> (n,)."""
    A, B = _ab(A, B)
    x = _x2(x)
    return np.sum((x**2 - A**2) ** 2 + B * x, axis=-1)


def grad_potential(x, A=None, B=None):
    """grad U (n, 2)."""
    A, B = _ab(A, B)
    x = _x2(x)
    return 4.0 * x * (x**2 - A**2) + B


def score(x, A=None, B=None):
    """Exact score ``-grad U`` (independent of C)."""
    return -grad_potential(x, A, B)


def drift(x, C: float = 0.0, A=None, B=None):
    """Exact drift ``-(I + C J) grad U`` (n, 2)."""
    return score(x, A, B) @ true_phi(C).T


def jacobian(x, C: float = 0.0, A=None, B=None):
    """Exact Jacobian ``-(I + C J) Hess U`` of the drift, shape (n, 2, 2)."""
    A, _ = _ab(A, B)
    x = _x2(x)
    H = np.zeros(x.shape[:-1] + (2, 2))
    H[..., 0, 0] = 12.0 * x[..., 0] ** 2 - 4.0 * A[0] ** 2
    H[..., 1, 1] = 12.0 * x[..., 1] ** 2 - 4.0 * A[1] ** 2
    return -true_phi(C) @ H


def tangent_system(C: float = 0.0, A=None, B=None, scheme: str = "heun"):
    """The numba drift, noise and tangent as an :class:`SDESystem` (x0 = the origin)."""
    A, B = _ab(A, B)
    C = float(C)
    if not np.isfinite(C):
        raise ValueError(f"C must be finite, got {C}")
    return SDESystem("potential", _drift, _noise, np.array([A[0], A[1], B[0], B[1], C]),
                     n_noise=2, scheme=scheme, tangent=_tangent, x0=np.zeros(2))


_NORMS: dict = {}


def _log_marginal_unnorm(t, a, b):
    return -((t * t - a * a) ** 2) - b * t


def _norm(a, b):
    key = (float(a), float(b))
    if key not in _NORMS:
        _NORMS[key] = integrate.quad(lambda t: math.exp(_log_marginal_unnorm(t, a, b)),
                                     -np.inf, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]
    return _NORMS[key]


def marginal_density(x, axis: int, A=None, B=None):
    """Exact marginal density of coordinate ``axis`` (0 or 1) at points ``x`` (any shape)."""
    A, B = _ab(A, B)
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    t = np.asarray(x, dtype=float)
    return np.exp(_log_marginal_unnorm(t, A[axis], B[axis])) / _norm(A[axis], B[axis])


def marginal_cdf(x, axis: int, A=None, B=None):
    """Exact marginal CDF of coordinate ``axis`` (adaptive quadrature; for KS tests)."""
    A, B = _ab(A, B)
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    a, b = A[axis], B[axis]
    t = np.atleast_1d(np.asarray(x, dtype=float))
    # tabulate once on a fine grid covering all the mass, then interpolate
    key = ("cdf", float(a), float(b))
    if key not in _NORMS:
        grid = np.linspace(-4.0, 4.0, 160_001)
        dens = np.exp(_log_marginal_unnorm(grid, a, b))
        c = integrate.cumulative_simpson(dens, x=grid, initial=0.0)
        _NORMS[key] = (grid, c / c[-1])
    grid, c = _NORMS[key]
    return np.interp(t, grid, c, left=0.0, right=1.0).reshape(np.shape(x))


def log_density(x, A=None, B=None):
    """Normalized log density ``-U(x) - log Z`` (n,)."""
    A, B = _ab(A, B)
    logz = math.log(_norm(A[0], B[0])) + math.log(_norm(A[1], B[1]))
    return -potential(x, A, B) - logz


def density(x, A=None, B=None):
    """Normalized stationary density ``exp(-U) / Z`` (n,) — the same for every C."""
    return np.exp(log_density(x, A, B))


def simulate(n_samples: int = 100_000, dt: float = 1e-3, save_every: int = 10,
             burn_in: float = 10.0, n_members: int | None = None, x0=None, seed=None,
             C: float = 0.0, A=None, B=None, progress: bool = True, path=None,
             overwrite: bool = False,
             scheme: str = "heun"):
    """Simulate the 2-D potential system and return an ``xr.Dataset`` with ``x(time, k)``.

    Parameters
    ----------
    n_samples : number of saved samples per member.
    dt : integration step; samples are ``dt * save_every`` apart (default 0.01, the paper's data
        spacing).
    burn_in : model time integrated and discarded before the first saved sample.
    n_members : ensemble size; ``None`` gives no ``member`` dim.
    x0 : initial state, shape (2,) or (n_members, 2); default the origin.
    seed : seed of the ``numpy.random.Generator`` drawing the noise.
    C : rotation strength (0: gradient system; 0.8: rotational variant).
    A, B : potential parameters (default (1, 1.2) and (0.6, 0.3)).
    path : if given, stream to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    scheme : ``"heun"`` (default; the noise is additive) or ``"euler"``.
    """
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    A, B = _ab(A, B)
    C = float(C)
    if not np.isfinite(C):
        raise ValueError(f"C must be finite, got {C}")
    x0 = np.asarray(np.zeros(2) if x0 is None else x0, dtype=float)
    if x0.shape not in ((2,), (m, 2)):
        raise ValueError(f"x0 must have shape (2,) or (n_members, 2) = ({m}, 2), got {x0.shape}")
    x0 = np.broadcast_to(x0.reshape(-1, 2), (m, 2))
    system = tangent_system(C, A, B, scheme)
    attrs = provenance("potential", EQUATION, {"A": A, "B": B, "C": C}, dt, save_every,
                       scheme, seed, burn_in,
                       extra={"score": "-grad U (for every C)",
                              "stationary_density": "exp(-U) / Z (for every C)",
                              "true_phi": true_phi(C).ravel(), "true_sigma": np.eye(2).ravel()})
    writer = dict(variables={"x": (("k",), slice(0, 2))}, coords={"k": np.arange(2)},
                  keep_member_dim=n_members is not None, attrs=attrs,
                  var_attrs={"x": {"long_name": "position in the 2-D potential"}})
    return run_sde(system, x0, n_samples, dt, save_every, burn_in, seed, writer,
                   progress=progress, path=path, overwrite=overwrite)
