r"""Reduced triad model with correlated additive–multiplicative (CAM) noise (METHODS.md §6).

Ito SDE, integrated with Euler–Maruyama (the Ito scheme needed for multiplicative noise)::

    dx = (-A B / 2 + a x + b x^2 - c x^3) dt + sigma1 dW1 + (A - B x) dW2

with the paper parameters a = -1.809, b = -0.0667, c = 0.1667, A = 0.1265, B = -0.6325,
sigma1 = 0.0632 (from eps = 0.1, L11 = -2, L12 = 0.2, L13 = 0.1, g2 = 0.6, g3 = 0.4, s2 = 1.2,
s3 = 0.8, I = 1).

Exact score and sign convention
-------------------------------
Write ``f(x)`` for the drift and ``g^2(x) = sigma1^2 + (A - B x)^2`` for the total diffusion
(the two Wiener processes are independent). The stationary Fokker–Planck equation
``0 = -(f p)' + (g^2 p)'' / 2`` with zero probability flux gives ``f p = (g^2 p)' / 2``, i.e.

    s(x) = (log p)' = (2 f - (g^2)') / g^2.

With ``(g^2)' = -2 B (A - B x) = -2 A B + 2 B^2 x`` and ``2 f = -A B + 2 a x + 2 b x^2 - 2 c x^3``:

    2 f - (g^2)' = A B + 2 (a - B^2) x + 2 b x^2 - 2 c x^3
                 = 2 (A B / 2 + (a - B^2) x + b x^2 - c x^3),

so ``s(x) = 2 (A B/2 + (a - B^2) x + b x^2 - c x^3) / (sigma1^2 + (A - B x)^2)``, the score of
METHODS.md. This holds only with the constant ``-A B / 2`` in the drift: with ``+A B / 2`` (the
KGMM paper's text, ``+F``) the numerator's constant would be ``3 A B / 2``. The test
``tests/systems/test_triad.py`` checks the simulated histogram against the density built from
this score (and that the ``+A B / 2`` density is rejected).

The density has no elementary closed form; :func:`density` integrates the exact score on a
fine grid (cumulative Simpson), normalizes it and interpolates.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import integrate

from ._sde import SDESystem, check_run_args, provenance, run_sde

EQUATION = "dx = (-A B/2 + a x + b x^2 - c x^3) dt + sigma1 dW1 + (A - B x) dW2  (Ito)"
SCORE = "s(x) = 2 (A B/2 + (a - B^2) x + b x^2 - c x^3) / (sigma1^2 + (A - B x)^2)"

#: paper parameters (METHODS.md §6)
DEFAULTS = dict(a=-1.809, b=-0.0667, c=0.1667, A=0.1265, B=-0.6325, sigma1=0.0632)
_ORDER = ("a", "b", "c", "A", "B", "sigma1")


@numba.njit(inline="always")
def _drift(x, p, out):
    a, b, c, A, B = p[0], p[1], p[2], p[3], p[4]
    v = x[0]
    out[0] = -A * B / 2.0 + a * v + b * v * v - c * v * v * v


@numba.njit(inline="always")
def _noise(x, p, xi, out):
    A, B, s1 = p[3], p[4], p[5]
    out[0] = s1 * xi[0] + (A - B * x[0]) * xi[1]


@numba.njit(inline="always")
def _tangent(x, p, V, out):
    a, b, c = p[0], p[1], p[2]
    v = x[0]
    for j in range(V.shape[1]):
        out[0, j] = (a + 2.0 * b * v - 3.0 * c * v * v) * V[0, j]


@numba.njit(inline="always")
def _noise_tangent(x, p, xi, V, out):
    # d/dx [sigma1 xi0 + (A - B x) xi1] = -B xi1
    for j in range(V.shape[1]):
        out[0, j] = -p[4] * xi[1] * V[0, j]


def _params(kw):
    unknown = set(kw) - set(_ORDER)
    if unknown:
        raise ValueError(f"unknown triad parameter(s) {sorted(unknown)}; known: {list(_ORDER)}")
    prm = {**DEFAULTS, **{k: float(v) for k, v in kw.items()}}
    for k, v in prm.items():
        if not np.isfinite(v):
            raise ValueError(f"triad parameter {k} must be finite, got {v}")
    if prm["c"] <= 0:
        raise ValueError(f"c must be > 0 for a confining cubic drift, got {prm['c']}")
    if prm["sigma1"] == 0 and prm["B"] == 0 and prm["A"] == 0:
        raise ValueError("the noise vanishes identically (sigma1 = A = B = 0)")
    return prm


def _x(x):
    return np.asarray(x, dtype=float)


def drift(x, **params):
    """Exact drift ``-A B/2 + a x + b x^2 - c x^3`` for ``x`` of shape (n, 1) or (n,)."""
    p = _params(params)
    x = _x(x)
    return -p["A"] * p["B"] / 2 + p["a"] * x + p["b"] * x**2 - p["c"] * x**3


def jacobian(x, **params):
    """Exact Jacobian ``a + 2 b x - 3 c x^2`` of the drift, shape (n, 1, 1)."""
    p = _params(params)
    x = _x(x).reshape(-1, 1)
    return (p["a"] + 2 * p["b"] * x - 3 * p["c"] * x**2)[:, :, None]


def tangent_system(scheme: str = "euler", **params):
    """The numba drift, noise, drift tangent and noise tangent ``D(g(x) xi) = -B xi_2`` as an
    :class:`SDESystem` (x0 = 0; Ito: only ``scheme="euler"``)."""
    if scheme != "euler":
        raise ValueError(f"the triad has multiplicative noise: only scheme='euler' (Ito) is "
                         f"valid, got {scheme!r}")
    prm = _params(params)
    return SDESystem("triad", _drift, _noise, np.array([prm[k] for k in _ORDER]), n_noise=2,
                     scheme=scheme, tangent=_tangent, noise_tangent=_noise_tangent,
                     x0=np.zeros(1))


def diffusion(x, **params):
    """Total diffusion ``g^2(x) = sigma1^2 + (A - B x)^2`` (sum over both noise components)."""
    p = _params(params)
    x = _x(x)
    return p["sigma1"] ** 2 + (p["A"] - p["B"] * x) ** 2


def score(x, **params):
    """Exact stationary score ``(2 f - (g^2)') / g^2`` (see the module docstring)."""
    p = _params(params)
    x = _x(x)
    a, b, c, A, B = (p[k] for k in ("a", "b", "c", "A", "B"))
    num = 2.0 * (A * B / 2 + (a - B**2) * x + b * x**2 - c * x**3)
    return num / diffusion(x, **params)


# -- density by quadrature of the score --------------------------------------------------------
_GRID_RANGE = (-3.0, 8.0)  # paper parameters: mass outside ~1e-13 (heavy right tail, x^-11-like)
_GRID_N = 220_001  # spacing 5e-5 << density width ~0.08


def _density_table(prm, lo=_GRID_RANGE[0], hi=_GRID_RANGE[1], n=_GRID_N):
    grid = np.linspace(lo, hi, n)
    logp = integrate.cumulative_simpson(score(grid, **prm), x=grid, initial=0.0)
    logp -= logp.max()
    p = np.exp(logp)
    norm = integrate.simpson(p, x=grid)
    cdf = integrate.cumulative_simpson(p, x=grid, initial=0.0) / norm
    return grid, p / norm, logp - np.log(norm), cdf


_TABLES: dict = {}


def _table(params):
    prm = _params(params)
    key = tuple(prm[k] for k in _ORDER)
    if key not in _TABLES:
        _TABLES[key] = _density_table(prm)
    return _TABLES[key]


def density(x, **params):
    """Normalized stationary density, from the exact score integrated on a fine grid.

    Tabulated on [-3, 8] (probability outside < 1e-12 for the paper parameters); zero outside.
    """
    grid, p, _, _ = _table(params)
    return np.interp(_x(x), grid, p, left=0.0, right=0.0)


def log_density(x, **params):
    """log of :func:`density` (``-inf`` outside the tabulated range)."""
    grid, _, logp, _ = _table(params)
    x = _x(x)
    out = np.interp(x, grid, logp)
    return np.where((x < grid[0]) | (x > grid[-1]), -np.inf, out)


def cdf(x, **params):
    """Stationary cumulative distribution function (for KS tests)."""
    grid, _, _, c = _table(params)
    return np.interp(_x(x), grid, c, left=0.0, right=1.0)


def simulate(n_samples: int = 100_000, dt: float = 1e-3, save_every: int = 10,
             burn_in: float = 10.0, n_members: int | None = None, x0=None, seed=None,
             progress: bool = True, path=None,
             overwrite: bool = False, scheme: str = "euler", **params):
    """Simulate the reduced triad model and return an ``xr.Dataset`` with ``x(time)``.

    Parameters
    ----------
    n_samples : number of saved samples per member.
    dt : Euler–Maruyama step (model time units); samples are ``dt * save_every`` apart (default
        1e-3 x 10 = 0.01; the linear relaxation time is ``~1/|a|`` = 0.55, the O(dt) bias of the
        stationary density at dt = 1e-3 is far below sampling error, see the tests).
    burn_in : model time integrated and discarded before the first saved sample.
    n_members : ensemble size; ``None`` gives no ``member`` dim (one trajectory).
    x0 : initial state(s), scalar or (n_members,); default 0.
    seed : seed of the ``numpy.random.Generator`` that draws all the noise.
    path : if given, stream the trajectory to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    scheme : ``"euler"`` only (the noise is multiplicative; Heun would be Stratonovich-like).
    **params : override a, b, c, A, B, sigma1 (defaults: the paper values, :data:`DEFAULTS`).
    """
    m = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    if scheme != "euler":
        raise ValueError(f"the triad has multiplicative noise: only scheme='euler' (Ito) is "
                         f"valid, got {scheme!r}")
    prm = _params(params)
    x0 = np.asarray(0.0 if x0 is None else x0, float).reshape(-1, 1)
    if x0.shape[0] not in (1, m):
        raise ValueError(f"x0 must be a scalar or have n_members={m} entries, got {x0.shape[0]}")
    x0 = np.broadcast_to(x0, (m, 1))
    system = tangent_system(scheme, **prm)
    attrs = provenance("triad", EQUATION, prm, dt, save_every, scheme, seed, burn_in,
                       extra={"score": SCORE,
                              "stationary_density": "exp(integral of the score), normalized"})
    writer = dict(variables={"x": ((), slice(0, 1))}, coords={},
                  keep_member_dim=n_members is not None, attrs=attrs,
                  var_attrs={"x": {"long_name": "reduced triad coordinate"}})
    return run_sde(system, x0, n_samples, dt, save_every, burn_in, seed, writer,
                   progress=progress, path=path, overwrite=overwrite)
