r"""Numba kernels of the QR (Benettin) method: tangent integration and re-orthonormalization.

Two engines share one re-orthonormalization step (:func:`_reorthonormalize`):

* :func:`rk4_block` / :func:`sde_block` integrate a state ``x`` and k tangent vectors ``V``
  (d, k) together with the numba functions of a :class:`~xlangevin.systems._sde.SDESystem`:
  classical RK4 of the drift, Euler–Maruyama or stochastic Heun along a given noise path. The
  tangent update is the exact derivative of the one-step map (RK4 applied to the variational
  equation is the derivative of the RK4 map; Euler: ``V += dt Df V + sqrt(dt) D(g xi) V``;
  Heun: ``V += dt/2 (Df(x) V + Df(x*) (V + dt Df(x) V))``), so the exponents are those of the
  discrete map that also produced the trajectory.
* :func:`map_block` multiplies precomputed one-step tangent maps ``M_n`` (n, d, d) (learned
  maps, Langevin models, user callables).

Every ``qr_every`` steps ``V = Q R``, ``log |R_jj|`` is recorded and ``V <- Q``
(modified Gram-Schmidt, ``R_jj > 0``: continuous backward Lyapunov vectors). References:
Benettin, Galgani, Giorgilli & Strelcyn (1980), "Lyapunov characteristic exponents for smooth
dynamical systems ..."; Shimada & Nagashima (1979).
"""

from __future__ import annotations

import math

import numba
import numpy as np

@numba.njit
def zero_noise_tangent(x, p, xi, V, out):
    """``D(g xi) V = 0`` for additive noise."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0.0


@numba.njit
def _reorthonormalize(V, logs_row):
    """``V = Q R`` by modified Gram-Schmidt with one re-orthogonalization pass (twice is
    enough, Giraud et al. 2005); ``V <- Q``, ``logs_row = log R_jj`` (``R_jj > 0``). False if a
    column collapses or is not finite."""
    d, k = V.shape
    ok = True
    for j in range(k):
        for _ in range(2):  # noqa: B007
            for i in range(j):
                r = 0.0
                for c in range(d):
                    r += V[c, i] * V[c, j]
                for c in range(d):
                    V[c, j] -= r * V[c, i]
        nrm = 0.0
        for c in range(d):
            nrm += V[c, j] * V[c, j]
        nrm = math.sqrt(nrm)
        if not (math.isfinite(nrm) and nrm > 0.0):
            ok = False
            logs_row[j] = np.nan
            continue
        logs_row[j] = math.log(nrm)
        for c in range(d):
            V[c, j] /= nrm
    return ok


@numba.njit
def _divergence(tangent, x, p, eye, scratch):
    """``tr Df(x)`` from the tangent applied to the identity."""
    tangent(x, p, eye, scratch)
    s = 0.0
    for i in range(eye.shape[0]):
        s += scratch[i, i]
    return s


@numba.njit
def _axpy(out, a, x, b, y):
    """``out = a x + b y`` elementwise (any matching shapes, flattened)."""
    o, xf, yf = out.ravel(), x.ravel(), y.ravel()
    for i in range(o.shape[0]):
        o[i] = a * xf[i] + b * yf[i]


@numba.njit
def _rk4_step(drift, tangent, x, V, p, dt, f, F, xs, Vs):
    """One RK4 step of (x, V) in place; ``f`` (4, d), ``F`` (4, d, k) stage scratch."""
    c = (0.0, 0.5, 0.5, 1.0)
    for s in range(4):
        if s == 0:
            xs[:] = x
            Vs[:] = V
        else:
            _axpy(xs, 1.0, x, c[s] * dt, f[s - 1])
            _axpy(Vs, 1.0, V, c[s] * dt, F[s - 1])
        drift(xs, p, f[s])
        tangent(xs, p, Vs, F[s])
    w = dt / 6.0
    for i in range(x.shape[0]):
        x[i] += w * (f[0, i] + 2.0 * f[1, i] + 2.0 * f[2, i] + f[3, i])
        for j in range(V.shape[1]):
            V[i, j] += w * (F[0, i, j] + 2.0 * F[1, i, j] + 2.0 * F[2, i, j] + F[3, i, j])


@numba.njit
def _sde_step(drift, noise, tangent, noise_tangent, heun, multiplicative, x, V, p, dt, xi, f,
              F, xs, Vs, g):
    """One Euler–Maruyama or stochastic Heun step of (x, V) along the normals ``xi``."""
    sdt = math.sqrt(dt)
    drift(x, p, f[0])
    tangent(x, p, V, F[0])
    noise(x, p, xi, g)
    if heun:
        _axpy(xs, 1.0, x, dt, f[0])
        _axpy(xs, 1.0, xs, sdt, g)
        _axpy(Vs, 1.0, V, dt, F[0])
        drift(xs, p, f[1])
        tangent(xs, p, Vs, F[1])
        _axpy(f[0], 0.5, f[0], 0.5, f[1])
        _axpy(F[0], 0.5, F[0], 0.5, F[1])
    elif multiplicative:
        noise_tangent(x, p, xi, V, F[1])
        _axpy(F[0], 1.0, F[0], 1.0 / sdt, F[1])
    _axpy(x, 1.0, x, dt, f[0])
    _axpy(x, 1.0, x, sdt, g)
    _axpy(V, 1.0, V, dt, F[0])


@numba.njit
def _record(tangent, x, V, p, r, logs, states, div, vecs, eye, scratch):
    """QR of ``V`` and the records of interval ``r``; False on a blow-up."""
    ok = _reorthonormalize(V, logs[r])
    for i in range(x.shape[0]):
        ok = ok and math.isfinite(x[i])
        states[r, i] = x[i]
    if ok:
        div[r] = _divergence(tangent, x, p, eye, scratch)
        if vecs.shape[0]:
            vecs[r] = V
    return ok


@numba.njit(cache=False)
def rk4_block(drift, tangent, x, V, p, dt, qr_every, logs, states, div, vecs):
    """Advance ``x`` (d,) and ``V`` (d, k) in place by RK4 through ``logs.shape[0]`` QR
    intervals of ``qr_every`` steps. Records per interval ``logs`` (log R_jj), the state
    ``states`` and ``div = tr Df`` after it, and ``V`` in ``vecs`` when ``vecs`` has rows.
    Returns the number of completed intervals (fewer on a blow-up: non-finite state or
    collapsed tangent vectors)."""
    d, k = V.shape
    f, F = np.empty((4, d)), np.empty((4, d, k))
    xs, Vs = np.empty(d), np.empty((d, k))
    eye, scratch = np.eye(d), np.empty((d, d))
    for r in range(logs.shape[0]):
        for _ in range(qr_every):
            _rk4_step(drift, tangent, x, V, p, dt, f, F, xs, Vs)
        if not _record(tangent, x, V, p, r, logs, states, div, vecs, eye, scratch):
            return r
    return logs.shape[0]


@numba.njit(cache=False)
def sde_block(drift, noise, tangent, noise_tangent, heun, multiplicative, x, V, p, dt, xi,
              qr_every, logs, states, div, vecs):
    """As :func:`rk4_block` with Euler–Maruyama (or stochastic Heun when ``heun``) steps along
    the normals ``xi`` (steps, n_noise)."""
    d, k = V.shape
    f, F = np.empty((4, d)), np.empty((4, d, k))
    xs, Vs, g = np.empty(d), np.empty((d, k)), np.empty(d)
    eye, scratch = np.eye(d), np.empty((d, d))
    for r in range(logs.shape[0]):
        for s in range(qr_every):
            _sde_step(drift, noise, tangent, noise_tangent, heun, multiplicative, x, V, p, dt,
                      xi[r * qr_every + s], f, F, xs, Vs, g)
        if not _record(tangent, x, V, p, r, logs, states, div, vecs, eye, scratch):
            return r
    return logs.shape[0]


@numba.njit(cache=False)
def map_block(M, V, qr_every, logs, vecs):
    """``V <- M_n V`` for the one-step tangent maps ``M`` (steps, d, d), QR every ``qr_every``
    steps (``logs.shape[0]`` intervals). Returns the number of completed intervals."""
    d, k = V.shape
    W = np.empty((d, k))
    for r in range(logs.shape[0]):
        for s in range(qr_every):
            Mn = M[r * qr_every + s]
            for i in range(d):
                for j in range(k):
                    acc = 0.0
                    for c in range(d):
                        acc += Mn[i, c] * V[c, j]
                    W[i, j] = acc
            V[:, :] = W
        if not _reorthonormalize(V, logs[r]):
            return r
        if vecs.shape[0]:
            vecs[r] = V
    return logs.shape[0]


@numba.njit(cache=False)
def rk4_propagate(drift, tangent, X, p, h, n_sub, Y, M):
    """Flow map over ``n_sub`` RK4 steps of ``h`` from each row of ``X`` (n, d): the end
    states ``Y`` and the map's Jacobians ``M`` (n, d, d) (tangent started at the identity)."""
    n, d = X.shape
    f, F = np.empty((4, d)), np.empty((4, d, d))
    xs, Vs = np.empty(d), np.empty((d, d))
    for i in range(n):
        x = X[i].copy()
        V = np.eye(d)
        for _ in range(n_sub):
            _rk4_step(drift, tangent, x, V, p, h, f, F, xs, Vs)
        Y[i] = x
        M[i] = V
