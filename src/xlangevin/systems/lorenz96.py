r"""Two-scale stochastic Lorenz-96 (METHODS.md §6).

    dx_k     = -x_{k-1} (x_{k-2} - x_{k+1}) - nu x_k + F + c1 sum_j y_{k,j}      + s_x dW
    dy_{k,j} = -c b y_{k,j+1} (y_{k,j+2} - y_{k,j-1}) - c nu y_{k,j} + c1 x_k   + s_y dW

with K = 4 slow and J = 10 fast variables per slow one, F = 4 (the paper's text; the authors' code
used 6), nu = 1, c = 10, b = 10, c1 = c / b, noise amplitude 0.2 on every variable. Indices are
periodic; by default (``fast_ring="global"``, METHODS.md) the fast variables form ONE ring of
K*J variables with flat index ``k*J + j``, so ``y_{k,J}`` is ``y_{k+1,0}``. ``fast_ring="sector"``
instead closes each sector's J variables on itself (``y_{k,J} = y_{k,0}``), which is what the
authors' published Julia script does.

Note the coupling sign: ``+c1 sum_j y`` in the slow equation, as in METHODS.md and the authors'
code (the classical Lorenz 1996 model has ``-h c / b sum_j Y``).

Integrated with stochastic Heun at dt = 5e-4 (the fast linear rate is c nu = 10 and the fast
advection scale ``c b |y| ~ 100 |y|``) and saved every 10 steps: data spacing 0.005. Measured: Heun
is stable and gives the same slow statistics (mean x 1.82, var x 8.4–8.5 at F = 4) for dt from
2.5e-4 up to 5e-3; the fine default is conservative. The cost is dominated by drawing the
K + K*J = 44 normals per step (~2.5 us/step/member here).
"""

from __future__ import annotations

import numba
import numpy as np

from ._sde import SDESystem, check_run_args, provenance, run_sde

EQUATION = ("dx_k = -x_{k-1}(x_{k-2} - x_{k+1}) - nu x_k + F + c1 sum_j y_{k,j} + noise_x dW; "
            "dy_{k,j} = -c b y_{k,j+1}(y_{k,j+2} - y_{k,j-1}) - c nu y_{k,j} + c1 x_k "
            "+ noise_y dW; periodic indices")
RINGS = ("global", "sector")


@numba.njit(inline="always")
def _fast_ring(i, k, J, n, sector):
    """Flat indices (i+1, i+2, i-1) of fast variable ``i`` (sector ``k``) on its ring."""
    if sector:
        j = i - k * J
        return k * J + (j + 1) % J, k * J + (j + 2) % J, k * J + (j - 1) % J
    return (i + 1) % n, (i + 2) % n, (i - 1) % n


@numba.njit(inline="always")
def _drift(u, p, out):
    # p = [K, J, F, nu, c, b, c1, noise_x, noise_y, sector]
    K = int(p[0])
    J = int(p[1])
    F, nu, c, b, c1 = p[2], p[3], p[4], p[5], p[6]
    sector = p[9] > 0.5
    n = K * J
    for k in range(K):
        s = 0.0
        for j in range(J):
            s += u[K + k * J + j]
        out[k] = (-u[(k - 1) % K] * (u[(k - 2) % K] - u[(k + 1) % K]) - nu * u[k] + F
                  + c1 * s)
    cb = c * b
    cn = c * nu
    for k in range(K):
        xk = u[k]
        for j in range(J):
            i = k * J + j
            ip1, ip2, im1 = _fast_ring(i, k, J, n, sector)
            out[K + i] = (-cb * u[K + ip1] * (u[K + ip2] - u[K + im1]) - cn * u[K + i]
                          + c1 * xk)


@numba.njit(inline="always")
def _tangent(u, p, V, out):
    # out = Df(u) V for V of shape (K + K*J, k)
    K = int(p[0])
    J = int(p[1])
    nu, c, b, c1 = p[3], p[4], p[5], p[6]
    sector = p[9] > 0.5
    n = K * J
    for k in range(K):
        km1, km2, kp1 = (k - 1) % K, (k - 2) % K, (k + 1) % K
        a = u[km2] - u[kp1]
        w = u[km1]
        for m in range(V.shape[1]):
            s = 0.0
            for j in range(J):
                s += V[K + k * J + j, m]
            out[k, m] = -(V[km1, m] * a + w * (V[km2, m] - V[kp1, m])) - nu * V[k, m] + c1 * s
    cb = c * b
    cn = c * nu
    for k in range(K):
        for j in range(J):
            i = k * J + j
            ip1, ip2, im1 = _fast_ring(i, k, J, n, sector)
            a = u[K + ip2] - u[K + im1]
            w = u[K + ip1]
            for m in range(V.shape[1]):
                out[K + i, m] = (-cb * (V[K + ip1, m] * a + w * (V[K + ip2, m] - V[K + im1, m]))
                                 - cn * V[K + i, m] + c1 * V[k, m])


@numba.njit(inline="always")
def _noise(u, p, xi, out):
    K = int(p[0])
    sx, sy = p[7], p[8]
    for i in range(K):
        out[i] = sx * xi[i]
    for i in range(K, out.shape[0]):
        out[i] = sy * xi[i]


def _params(K, J, F, nu, c, b, c1, noise_x, noise_y, fast_ring):
    if int(K) != K or K < 4:
        raise ValueError(f"K must be an integer >= 4 (the slow advection reaches k-2 and k+1), "
                         f"got {K}")
    if int(J) != J or J < 0:
        raise ValueError(f"J must be an integer >= 0 (0: the one-scale model), got {J}")
    if fast_ring not in RINGS:
        raise ValueError(f"fast_ring must be one of {RINGS}, got {fast_ring!r}")
    if fast_ring == "sector" and J < 3:
        raise ValueError(f"fast_ring='sector' needs J >= 3, got {J}")
    c1 = c / b if c1 is None else c1
    prm = dict(K=int(K), J=int(J), F=float(F), nu=float(nu), c=float(c), b=float(b),
               c1=float(c1), noise_x=float(noise_x), noise_y=float(noise_y),
               fast_ring=fast_ring)
    for k, v in prm.items():
        if k != "fast_ring" and not np.isfinite(v):
            raise ValueError(f"{k} must be finite, got {v}")
    if prm["noise_x"] < 0 or prm["noise_y"] < 0:
        raise ValueError("noise amplitudes must be >= 0")
    return prm


def _aux_rng(seed):
    """A generator for the initial perturbation, independent of the noise stream of ``seed``."""
    if isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def _pvec(prm):
    return np.array([prm["K"], prm["J"], prm["F"], prm["nu"], prm["c"], prm["b"], prm["c1"],
                     prm["noise_x"], prm["noise_y"], 1.0 if prm["fast_ring"] == "sector" else 0.0])


def drift(u, K: int = 4, J: int = 10, F: float = 4.0, nu: float = 1.0, c: float = 10.0,
          b: float = 10.0, c1: float | None = None, fast_ring: str = "global"):
    """Exact drift for full states ``u`` of shape (n, K + K*J) = [x_0..x_{K-1}, y flat]."""
    prm = _params(K, J, F, nu, c, b, c1, 0.0, 0.0, fast_ring)
    u = np.asarray(u, dtype=float)
    K, J = prm["K"], prm["J"]
    if u.shape[-1] != K + K * J:
        raise ValueError(f"states must have shape (n, K + K*J) = (n, {K + K * J}), got {u.shape}")
    x = u[..., :K]
    y = u[..., K:]
    F, nu, c, b, c1 = (prm[k] for k in ("F", "nu", "c", "b", "c1"))
    ysum = y.reshape(u.shape[:-1] + (K, J)).sum(-1)
    dx = (-np.roll(x, 1, -1) * (np.roll(x, 2, -1) - np.roll(x, -1, -1)) - nu * x + F + c1 * ysum)
    if fast_ring == "global":
        yp1, yp2, ym1 = np.roll(y, -1, -1), np.roll(y, -2, -1), np.roll(y, 1, -1)
    else:
        yk = y.reshape(u.shape[:-1] + (K, J))
        yp1, yp2, ym1 = (np.roll(yk, s, -1).reshape(y.shape) for s in (-1, -2, 1))
    dy = -c * b * yp1 * (yp2 - ym1) - c * nu * y + c1 * np.repeat(x, J, axis=-1)
    return np.concatenate([dx, dy], axis=-1)


def jacobian(u, K: int = 4, J: int = 10, F: float = 4.0, nu: float = 1.0, c: float = 10.0,
             b: float = 10.0, c1: float | None = None, fast_ring: str = "global"):
    """Exact Jacobian ``D[n, i, l] = d f_i / d u_l`` of :func:`drift`, shape (n, d, d); its
    trace (the divergence) is the constant ``-K nu - K J c nu``."""
    prm = _params(K, J, F, nu, c, b, c1, 0.0, 0.0, fast_ring)
    K, J = prm["K"], prm["J"]
    u = np.asarray(u, dtype=float)
    d = K + K * J
    if u.shape[-1] != d:
        raise ValueError(f"states must have shape (n, K + K*J) = (n, {d}), got {u.shape}")
    D = np.zeros(u.shape[:-1] + (d, d))
    for k in range(K):
        km1, km2, kp1 = (k - 1) % K, (k - 2) % K, (k + 1) % K
        D[..., k, km1] -= u[..., km2] - u[..., kp1]
        D[..., k, km2] -= u[..., km1]
        D[..., k, kp1] += u[..., km1]
        D[..., k, k] -= prm["nu"]
        D[..., k, K + k * J:K + (k + 1) * J] += prm["c1"]
    cb, cn = prm["c"] * prm["b"], prm["c"] * prm["nu"]
    for i in range(K * J):
        k = i // J
        ip1, ip2, im1 = (K + r for r in _fast_ring(i, k, J, K * J, fast_ring == "sector"))
        D[..., K + i, ip1] -= cb * (u[..., ip2] - u[..., im1])
        D[..., K + i, ip2] -= cb * u[..., ip1]
        D[..., K + i, im1] += cb * u[..., ip1]
        D[..., K + i, K + i] -= cn
        D[..., K + i, k] += prm["c1"]
    return D


def tangent_system(K: int = 4, J: int = 10, F: float = 4.0, nu: float = 1.0, c: float = 10.0,
                   b: float = 10.0, c1: float | None = None, noise_x: float = 0.2,
                   noise_y: float = 0.2, fast_ring: str = "global", scheme: str = "heun",
                   seed=None):
    """The numba drift, noise and tangent ``Df(u) V`` as an :class:`SDESystem` (for
    :func:`xlangevin.lyapunov`). ``J = 0`` is the one-scale model ``dx_k = (x_{k+1} -
    x_{k-2}) x_{k-1} - nu x_k + F``. Default initial state: x = F, y = 0, plus 0.01 times a
    seeded normal perturbation."""
    prm = _params(K, J, F, nu, c, b, c1, noise_x, noise_y, fast_ring)
    K, J = prm["K"], prm["J"]
    x0 = np.concatenate([np.full(K, prm["F"]), np.zeros(K * J)])
    x0 = x0 + 0.01 * _aux_rng(seed).standard_normal(K + K * J)
    return SDESystem("lorenz96", _drift, _noise, _pvec(prm), n_noise=K + K * J, scheme=scheme,
                     tangent=_tangent, x0=x0)


def simulate(n_samples: int = 100_000, dt: float = 5e-4, save_every: int = 10,
             burn_in: float = 20.0, n_members: int | None = None, x0=None, seed=None,
             K: int = 4, J: int = 10, F: float = 4.0, nu: float = 1.0, c: float = 10.0,
             b: float = 10.0, c1: float | None = None, noise_x: float = 0.2,
             noise_y: float = 0.2, fast_ring: str = "global", progress: bool = True,
             path=None,
             overwrite: bool = False, scheme: str = "heun"):
    """Simulate two-scale stochastic Lorenz-96; return ``x(time, k)`` and ``y(time, k, j)``.

    Parameters
    ----------
    n_samples : saved samples per member (spacing ``dt * save_every``, default 0.005).
    dt : integration step (default 5e-4).
    burn_in : model time integrated and discarded (default 20).
    n_members : ensemble size; ``None`` gives no ``member`` dim.
    x0 : full initial state (K + K*J,) or (n_members, K + K*J); default x = F plus a small
        seeded perturbation, y = 0 plus a small perturbation.
    seed : seed of the generator (noise and the default initial perturbation).
    K, J, F, nu, c, b, c1 : model parameters (``c1`` defaults to c / b).
    noise_x, noise_y : additive noise amplitudes of the slow and fast variables.
    fast_ring : ``"global"`` (one ring of K*J fast variables) or ``"sector"`` (a ring per k).
    path : if given, stream to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    scheme : ``"heun"`` (default) or ``"euler"``.
    """
    mm = check_run_args(n_samples, dt, save_every, burn_in, n_members)
    if J == 0:
        raise ValueError("J must be >= 1 in simulate (the two-scale model); J = 0, the one-scale "
                         "model, is offered by drift, jacobian and tangent_system")
    prm = _params(K, J, F, nu, c, b, c1, noise_x, noise_y, fast_ring)
    K, J = prm["K"], prm["J"]
    d = K + K * J
    system = tangent_system(**{k: v for k, v in prm.items()}, scheme=scheme, seed=seed)
    x0 = np.asarray(system.x0 if x0 is None else x0, dtype=float)
    if x0.shape not in ((d,), (mm, d)):
        raise ValueError(f"x0 must have shape ({d},) or (n_members, {d}), got {x0.shape}")
    x0 = np.broadcast_to(x0.reshape(-1, d), (mm, d))
    attrs = provenance("lorenz96", EQUATION, prm, dt, save_every, scheme, seed, burn_in,
                       extra={"fast_index": "flat fast index k*J + j"})
    writer = dict(variables={"x": (("k",), slice(0, K)), "y": (("k", "j"), slice(K, d))},
                  coords={"k": np.arange(K), "j": np.arange(J)},
                  keep_member_dim=n_members is not None, attrs=attrs,
                  var_attrs={"x": {"long_name": "Lorenz-96 slow variables"},
                             "y": {"long_name": "Lorenz-96 fast variables"}})
    return run_sde(system, x0, n_samples, dt, save_every, burn_in, seed, writer,
                   progress=progress, path=path, overwrite=overwrite)
