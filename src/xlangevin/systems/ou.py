r"""d-dimensional Ornstein–Uhlenbeck process, sampled EXACTLY (no time-stepping error).

    dx = A x dt + B dW,      A (d, d) stable (all eigenvalues with negative real part),
                             B (d, k) noise matrix.

Exact facts used here and by the tests:

* stationary covariance ``C0`` solves ``A C0 + C0 A^T + B B^T = 0``;
* lagged covariance ``C(tau) = <x(t + tau) x(t)^T> = expm(A tau) C0`` (tau >= 0);
* transition over the sampling interval h: ``x_{n+1} = F x_n + L eta``, ``F = expm(A h)``,
  ``L L^T = C0 - F C0 F^T`` (the innovation covariance), ``eta ~ N(0, I)``;
* score ``s(x) = -C0^{-1} x``; Langevin form ``dx = Phi s(x) dt + sqrt(2) Sigma dW`` (METHODS.md
  §0) with ``Phi = -A C0`` and ``Sigma Sigma^T = B B^T / 2`` (indeed ``Phi_S = (Phi + Phi^T)/2 =
  -(A C0 + C0 A^T)/2 = B B^T / 2``).

Trajectories start from the stationary distribution (unless ``x0`` is given), so no burn-in is
needed.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.linalg as sla

from ._sde import SDESystem, TrajectoryWriter, check_run_args, provenance, record_chunks

EQUATION = "dx = A x dt + B dW (exact transition sampling)"


def _check(A, B):
    """Validate (A, B) and return them as float arrays (B promoted to 2-D)."""
    A = np.asarray(A, dtype=float)
    B = np.asarray(B, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A must be a square (d, d) matrix, got shape {A.shape}")
    d = A.shape[0]
    if B.ndim == 1 and d == 1:
        B = B.reshape(1, -1)
    if B.ndim != 2 or B.shape[0] != d:
        raise ValueError(f"B must have shape (d, k) = ({d}, k) to match A, got shape {B.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("A and B must be finite")
    ev = np.linalg.eigvals(A)
    if np.max(ev.real) >= 0:
        raise ValueError(f"A must be stable (all eigenvalues with negative real part); "
                         f"max real part is {np.max(ev.real):.4g}")
    return A, B


def stationary_covariance(A, B) -> np.ndarray:
    """``C0`` solving ``A C0 + C0 A^T + B B^T = 0`` (symmetrized)."""
    A, B = _check(A, B)
    C0 = sla.solve_continuous_lyapunov(A, -B @ B.T)
    C0 = 0.5 * (C0 + C0.T)
    if np.min(np.linalg.eigvalsh(C0)) <= 0:
        raise ValueError("the stationary covariance is singular: the noise B does not reach all "
                         "directions (the pair (A, B) is not controllable)")
    return C0


def lagged_covariance(A, B, tau) -> np.ndarray:
    """``C(tau) = <x(t + tau) x(t)^T> = expm(A tau) C0`` for ``tau >= 0`` (scalar or 1-D array;
    an array gives shape (n_tau, d, d))."""
    A, B = _check(A, B)
    C0 = stationary_covariance(A, B)
    taus = np.asarray(tau, dtype=float)
    if np.any(taus < 0):
        raise ValueError("tau must be >= 0 (use C(-tau) = C(tau)^T)")
    out = np.array([sla.expm(A * t) @ C0 for t in np.atleast_1d(taus)])
    return out[0] if taus.ndim == 0 else out


def drift(x, A):
    """Exact drift ``A x`` for ``x`` of shape (n, d)."""
    A = np.asarray(A, dtype=float)
    return np.asarray(x, dtype=float) @ A.T


def jacobian(x, A):
    """Jacobian of the drift: the constant ``A``, broadcast to shape (n, d, d)."""
    A = np.asarray(A, dtype=float)
    x = np.asarray(x, dtype=float)
    return np.broadcast_to(A, x.shape[:-1] + A.shape).copy()


@numba.njit(inline="always")
def _matvec(M, V, out):
    for i in range(M.shape[0]):
        for j in range(V.shape[1]):
            s = 0.0
            for c in range(M.shape[1]):
                s += M[i, c] * V[c, j]
            out[i, j] = s


@numba.njit(inline="always")
def _unpack(p):
    # p = [d, k, A (d*d), B (d*k)]
    d, k = int(p[0]), int(p[1])
    return p[2:2 + d * d].reshape((d, d)), p[2 + d * d:2 + d * d + d * k].reshape((d, k))


@numba.njit(inline="always")
def _drift(x, p, out):
    A, _ = _unpack(p)
    _matvec(A, x.reshape((-1, 1)), out.reshape((-1, 1)))


@numba.njit(inline="always")
def _noise(x, p, xi, out):
    _, B = _unpack(p)
    _matvec(B, xi.reshape((-1, 1)), out.reshape((-1, 1)))


@numba.njit(inline="always")
def _tangent(x, p, V, out):
    A, _ = _unpack(p)
    _matvec(A, V, out)


def tangent_system(A, B, scheme: str = "euler"):
    """``dx = A x dt + B dW`` as an :class:`SDESystem` with its tangent ``A V`` (for
    :func:`xlangevin.lyapunov`, whose exponents are the real parts of the eigenvalues of
    ``A``); x0 = 0."""
    A, B = _check(A, B)
    p = np.concatenate([[A.shape[0], B.shape[1]], A.ravel(), B.ravel()])
    return SDESystem("ou", _drift, _noise, p, n_noise=B.shape[1], scheme=scheme,
                     tangent=_tangent, x0=np.zeros(A.shape[0]))


def score(x, A, B):
    """Exact score ``-C0^{-1} x`` for ``x`` of shape (n, d)."""
    C0 = stationary_covariance(A, B)
    x = np.asarray(x, dtype=float)
    return -np.linalg.solve(C0, x.T).T


def density(x, A, B):
    """Stationary Gaussian density N(0, C0) at ``x`` (n, d)."""
    C0 = stationary_covariance(A, B)
    x = np.asarray(x, dtype=float)
    d = C0.shape[0]
    L = np.linalg.cholesky(C0)
    z = sla.solve_triangular(L, x.T, lower=True)
    logdet = 2.0 * np.sum(np.log(np.diag(L)))
    return np.exp(-0.5 * np.sum(z * z, axis=0) - 0.5 * (d * np.log(2 * np.pi) + logdet))


def langevin_phi(A, B) -> np.ndarray:
    """Mobility ``Phi = -A C0`` of the Langevin form ``dx = Phi s dt + sqrt(2) Sigma dW``."""
    A, B = _check(A, B)
    return -A @ stationary_covariance(A, B)


def langevin_sigma(A, B) -> np.ndarray:
    """Lower Cholesky factor ``Sigma`` of ``B B^T / 2`` (= ``Phi_S``); needs B B^T > 0."""
    A, B = _check(A, B)
    return np.linalg.cholesky(0.5 * B @ B.T)


def _factor(Q):
    """Lower factor L with L L^T = Q for a symmetric PSD Q (eigen fallback if semi-definite)."""
    Q = 0.5 * (Q + Q.T)
    try:
        return np.linalg.cholesky(Q)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(Q)
        return V * np.sqrt(np.clip(w, 0.0, None))


def transition(A, B, h):
    """``(F, L)``: propagator ``expm(A h)`` and innovation factor, ``L L^T = C0 - F C0 F^T``."""
    A, B = _check(A, B)
    C0 = stationary_covariance(A, B)
    F = sla.expm(A * h)
    return F, _factor(C0 - F @ C0 @ F.T)


@numba.njit(cache=False)
def _ar_chunk(x, F, L, eta, out):
    # x (m, d) advanced in place; eta (n, m, d); out (n, m, d)
    n, m, d = eta.shape
    tmp = np.empty(d)
    for i in range(n):
        for r in range(m):
            for a in range(d):
                s = 0.0
                for b in range(d):
                    s += F[a, b] * x[r, b] + L[a, b] * eta[i, r, b]
                tmp[a] = s
            for a in range(d):
                x[r, a] = tmp[a]
                out[i, r, a] = tmp[a]


def simulate(A, B, n_samples: int = 100_000, dt: float = 0.01, burn_in: float = 0.0,
             n_members: int | None = None, x0=None, seed=None, progress: bool = True,
             path=None,
             overwrite: bool = False, chunk_samples: int | None = None):
    """Sample ``dx = A x dt + B dW`` exactly at spacing ``dt``; return ``x(time, k)``.

    Parameters
    ----------
    A : (d, d) stable drift matrix.  B : (d, k) noise matrix.
    n_samples : saved samples per member.
    dt : sampling interval h (exact: there is no integration step).
    burn_in : model time propagated (exactly) and discarded before the first sample; only
        useful with a given ``x0``.
    n_members : ensemble size; ``None`` gives no ``member`` dim.
    x0 : initial state (d,) or (n_members, d); default: a draw from the stationary N(0, C0).
        The first saved sample is one interval after the (burnt-in) initial state.
    seed : seed of the ``numpy.random.Generator``.
    path : if given, stream to this NetCDF file and return it opened lazily.
    overwrite : replace an existing ``path`` (never a read-only file); default False.
    """
    m = check_run_args(n_samples, dt, 1, burn_in, n_members)
    A, B = _check(A, B)
    d = A.shape[0]
    C0 = stationary_covariance(A, B)
    F, L = transition(A, B, dt)
    rng = np.random.default_rng(seed)
    if x0 is None:
        x = rng.standard_normal((m, d)) @ np.linalg.cholesky(C0).T
    else:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape not in ((d,), (m, d)):
            raise ValueError(f"x0 must have shape ({d},) or (n_members, d) = ({m}, {d}), "
                             f"got {x0.shape}")
        x = np.array(np.broadcast_to(x0.reshape(-1, d), (m, d)))
    if burn_in > 0:
        Fb, Lb = transition(A, B, burn_in)
        x = x @ Fb.T + rng.standard_normal((m, d)) @ Lb.T
    x = np.ascontiguousarray(x)
    attrs = provenance("ou", EQUATION,
                       {"A": A.ravel(), "A_shape": np.array(A.shape), "B": B.ravel(),
                        "B_shape": np.array(B.shape)},
                       dt, 1, "exact", seed, burn_in,
                       extra={"score": "-C0^{-1} x", "stationary_covariance": C0.ravel(),
                              "langevin_phi": (-A @ C0).ravel()})
    writer = TrajectoryWriter(
        variables={"x": (("k",), slice(0, d))}, coords={"k": np.arange(d)}, n_members=m,
        keep_member_dim=n_members is not None, n_samples=n_samples, sample_interval=dt,
        t0=burn_in + dt, attrs=attrs, path=path, overwrite=overwrite,
        var_attrs={"x": {"long_name": "Ornstein-Uhlenbeck state"}})
    if chunk_samples is None:  # ~32 MB of normals per chunk
        chunk_samples = max(1, min(n_samples, (4 << 20) // (m * d)))
    def advance(n):
        out = np.empty((n, m, d))
        _ar_chunk(x, F, L, rng.standard_normal((n, m, d)), out)
        return out

    return record_chunks(writer, advance, n_samples, chunk_samples, "ou", progress)
