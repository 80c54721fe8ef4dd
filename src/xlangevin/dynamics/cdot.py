r"""Estimators of ``Cdot(0) = dC/dtau (0+)`` from data (METHODS.md §4, docs/cdot_estimators.md).

``C(tau) = <x(t + tau) x(t)^T>`` (mean removed), with pairs inside sequences only (bounds ``b``,
:meth:`xlangevin.FeatureSpace.sequence_bounds`). For the Langevin SDE ``Cdot(0) = Phi V`` with
``V = <s(x) x^T>`` (:mod:`xlangevin.dynamics.transitions` states the conventions):

* :func:`cdot_lagged` — finite differences of the lagged covariances, extrapolated to lag 0;
* :func:`cdot_logm` — the matrix logarithm of ``C(lag) C(0)^{-1}`` (exact for linear dynamics);
* :func:`cdot_finite_volume` — ``Xc Q diag(pi) Xc^T`` of the finite-volume rate matrix.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla

from .checks import as_2d, check_bounds, check_dt, check_lag
from .transitions import GeneratorWarning, RateMatrix, cell_centres, estimate_generator

__all__ = ["lagged_covariances", "cdot_finite_volume", "cdot_lagged", "cdot_logm",
           "extrapolation_weights"]


# ---------------------------------------------------------------------------------------------
# lagged second moments of the data (within sequences)
# ---------------------------------------------------------------------------------------------
def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` over i (empty ranges skipped), vectorized."""
    ln = np.maximum(hi - lo, 0)
    tot = int(ln.sum())
    if tot == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(ln)[:-1]]), ln)
    return np.arange(tot, dtype=np.int64) + starts


def _excluded(b: np.ndarray, k: int, which: str) -> np.ndarray:
    """Positions left out of the full-array sums at lag k: ``"src"`` = the last k of every
    sequence (their t + k lies in the next sequence or past the end), ``"dst"`` = the first k."""
    if which == "src":
        return _ranges(np.maximum(b[:-1], b[1:] - k), b[1:])
    return _ranges(b[:-1], np.minimum(b[1:], b[:-1] + k))


class _Moments:
    """Sums over the valid pairs (t, t + k) of one lag k, X centred and float64."""

    def __init__(self, Xc, b, k):
        n = Xc.shape[0]
        self.k = k
        self.M = int(np.maximum(np.diff(b) - k, 0).sum())
        if self.M == 0:
            raise ValueError(f"no pairs at lag {k}: every sequence is shorter than {k + 1}")
        src_bad = _excluded(b, k, "src")                 # t with t + k across a bound (or past n)
        dst_bad = _excluded(b, k, "dst")                 # first k positions of every sequence
        # S_ds = sum x_{t+k} x_t^T over valid t: full shifted product minus the crossing pairs
        cross = src_bad[src_bad + k < n]
        self.S_ds = Xc[k:].T @ Xc[:-k] - Xc[cross + k].T @ Xc[cross]
        full = Xc.T @ Xc
        self.S_ss = full - Xc[src_bad].T @ Xc[src_bad]   # sources: all but the last k of each seq
        self.S_dd = full - Xc[dst_bad].T @ Xc[dst_bad]   # destinations: all but the first k


def _centred(X, b):
    X = as_2d(X)
    if X.shape[0] != b[-1]:
        raise ValueError(f"bounds end at {b[-1]} but X has {X.shape[0]} rows")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf values")
    X = X.astype(np.float64, copy=False)
    return X - X.mean(axis=0)


def lagged_covariances(X, lags, bounds=None) -> np.ndarray:
    """``C(k) = mean over valid t of (x_{t+k} - m)(x_t - m)^T`` (m = overall mean; lag 0 = all
    samples), pairs within sequences only. ``lags`` in samples; returns (n_lags, d, d)."""
    X = as_2d(X)
    b = check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    out = []
    for k in np.atleast_1d(lags):
        k = int(k)
        if k < 0:
            raise ValueError("lags must be >= 0")
        if k == 0:
            out.append(Xc.T @ Xc / Xc.shape[0])
        else:
            m = _Moments(Xc, b, k)
            out.append(m.S_ds / m.M)
    return np.array(out)


# ---------------------------------------------------------------------------------------------
# Cdot(0) estimators
# ---------------------------------------------------------------------------------------------
def cdot_finite_volume(X, labels, dt: float, bounds=None, n_states: int | None = None,
                       correction: str = "none", lag: int = 1, restrict: str = "none",
                       generator: RateMatrix | None = None, warn: bool = True, **kwargs):
    """Finite-volume ``Cdot(0) = Xc Q diag(pi) Xc^T`` (METHODS.md §4).

    ``Xc`` = cell centres (mean of the samples of ``X`` in each cell, pi-weighted mean removed),
    ``Q``, ``pi`` from :func:`estimate_generator` (or the given ``generator``, whose ``states``
    select the centres). Computed as ``((Xc Q) diag(pi)) Xc^T`` with sparse ``Q``.

    Its symmetric part equals ``-(1/2) sum_{m,n} Q[m,n] pi_n (c_m - c_n)(c_m - c_n)^T`` when
    ``Q pi = 0``: the quadratic variation of the CELL-CENTRE process per unit time, which
    over-estimates ``Phi_S`` of a diffusion by ~``h / sqrt(dt)`` when the cell size ``h`` exceeds
    the diffusion length (boundary re-crossings). See docs/cdot_estimators.md.

    Returns ``(cdot (d, d), diagnostics)``; diagnostics holds ``"generator"`` (the
    :class:`RateMatrix`), ``"centres"`` (k, d) and the generator's summary numbers.
    """
    X = as_2d(X)
    if generator is None:
        generator = estimate_generator(labels, dt, n_states=n_states, bounds=bounds,
                                       correction=correction, lag=lag, restrict=restrict,
                                       warn=warn, **kwargs)
    G = generator
    ns_total = G.diagnostics["n_states_total"]
    cen, cnt = cell_centres(X, labels, ns_total)
    cen = cen[G.states]
    pi = G.pi
    ok = cnt[G.states] > 0
    cen = np.where(ok[:, None], cen, 0.0)              # unvisited: pi = 0, zero column of Q
    cen = cen - (pi @ cen)
    XQ = (G.Q.T @ cen).T                               # Xc Q, (d, k)
    cdot = (XQ * pi[None, :]) @ cen
    d = G.diagnostics
    diag = {
        "estimator": "finite_volume",
        "tau": G.tau,
        "correction": G.correction,
        "n_cells": G.n_states,
        "leave_fraction": d["leave_fraction"],
        "null_distance": d["null_distance"],
        "n_components": d["n_components"],
        "generator": G,
        "centres": cen,
    }
    return cdot, diag


def _increment_moments(Xc, b, k):
    """Per lag k: (M, D_sym = -<dx dx^T>/2, D_anti = antisym <x_{t+k} x_t^T>) over valid pairs."""
    m = _Moments(Xc, b, k)
    S_ds = m.S_ds
    E = (m.S_dd + m.S_ss - S_ds - S_ds.T) / m.M       # <dx dx^T>, dx = x_{t+k} - x_t
    A = (S_ds - S_ds.T) / (2.0 * m.M)
    return m.M, -0.5 * E, A


def cdot_lagged(X, dt: float, bounds=None, lags=(1, 2, 3), order: int | None = None):
    """Lagged finite difference ``f(tau) = (C(tau) - C(0)) / tau``, extrapolated to ``tau -> 0``.

    ``C(tau) - C(0)`` is computed from the increments over each lag ``k`` (``tau = k dt``):
    symmetric part ``-(1/2) <dx dx^T>`` and antisymmetric part ``antisym <x_{t+k} x_t^T>``, both
    over the pairs inside sequences (mean removed). This equals ``C(tau) - C(0)`` of the usual
    estimators up to sequence-end terms, without their O(n_sequences k / n) bias — which matters
    at small ``tau`` with many short sequences.

    Extrapolation: ``f(tau) = Cdot(0) + tau Cddot(0) / 2 + tau^2 C'''(0) / 6 + ...`` is fitted by
    a polynomial of degree ``order`` in ``tau`` over the given lags (least squares) and evaluated
    at 0. Default ``order = len(lags) - 1`` interpolates (Richardson extrapolation): with
    ``lags=(1, 2, 3)`` the weights are ``3 f(dt) - 3 f(2 dt) + f(3 dt)`` and the remaining
    error is ``O(dt^3)``; ``lags=(1,)`` is the plain one-step difference (error ``O(dt)``).

    Returns ``(cdot (d, d), diagnostics)`` with ``f`` (n_lags, d, d), ``taus``, ``weights``
    (the linear combination of the ``f`` giving the estimate) and ``n_pairs``.
    """
    dt = check_dt(dt)
    lags = np.atleast_1d(np.asarray(lags))
    if lags.ndim != 1 or lags.size < 1 or not np.issubdtype(lags.dtype, np.integer) \
            or np.any(lags < 1) or np.unique(lags).size != lags.size:
        raise ValueError(f"lags must be distinct positive integers (samples), got {lags}")
    order = lags.size - 1 if order is None else int(order)
    if not 0 <= order < lags.size:
        raise ValueError(f"order must be in [0, {lags.size - 1}] for {lags.size} lags")
    X = as_2d(X)
    b = check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    taus = lags.astype(np.float64) * dt
    f = []
    npairs = []
    for k in lags:
        M, Ds, Da = _increment_moments(Xc, b, int(k))
        f.append((Ds + Da) / (k * dt))
        npairs.append(M)
    f = np.array(f)
    w = extrapolation_weights(taus, order)
    cdot = np.tensordot(w, f, axes=1)
    diag = {"estimator": "lagged", "taus": taus, "lags": lags, "order": order, "f": f,
            "weights": w, "n_pairs": np.array(npairs)}
    return cdot, diag


def extrapolation_weights(taus, order):
    """Weights w with sum_k w_k f(tau_k) = value at 0 of the least-squares polynomial of degree
    ``order`` through the points (tau_k, f_k)."""
    V = np.vander(np.asarray(taus, dtype=np.float64), order + 1, increasing=True)
    pinv = np.linalg.pinv(V)
    return pinv[0]


def cdot_logm(X, dt: float, bounds=None, lag: int = 1, imag_tol: float = 1e-8):
    """Matrix-log estimator ``Cdot(0) = logm(K) C0 / tau``, ``K = C(tau) C0^-1``, ``tau = lag dt``.

    ``K`` is the least-squares propagator ``x_{t+lag} ~ K x_t`` (``C(tau) = <x_{t+lag} x_t^T>``,
    ``C0 = <x_t x_t^T>`` over the same pairs, mean removed, within sequences). For a linear
    (OU) process ``K = expm(A tau)`` and the estimate is exact at ANY ``tau`` (no
    finite-difference error); for nonlinear dynamics it is the generator of the best linear
    (quasi-Gaussian) model at that lag, which tends to ``Cdot(0)`` as ``tau -> 0``.

    Raises ``ValueError`` when ``K`` has a real eigenvalue ``<= 0`` (no real logarithm: the lag
    is too long, or the data are not Markov/linear at this lag) or when ``logm`` comes back
    complex beyond ``imag_tol`` (relative). Eigenvalues of modulus ``>= 1`` (a non-contracting
    propagator) give a ``GeneratorWarning``.

    Returns ``(cdot (d, d), diagnostics)`` with ``K``, its eigenvalues, ``tau``, ``n_pairs`` and
    ``logm_residual = |expm(logm K) - K|_1 / |K|_1``.
    """
    dt = check_dt(dt)
    lag = check_lag(lag)
    X = as_2d(X)
    b = check_bounds(bounds, X.shape[0])
    Xc = _centred(X, b)
    m = _Moments(Xc, b, lag)
    Ct = m.S_ds / m.M
    C0 = m.S_ss / m.M
    K = np.linalg.solve(C0.T, Ct.T).T                 # K C0 = C(tau)
    ev = np.linalg.eigvals(K)
    scale = np.max(np.abs(ev)) if ev.size else 1.0
    bad = (np.abs(ev.imag) <= 1e-12 * max(scale, 1e-300)) & (ev.real <= 0)
    if np.any(bad):
        raise ValueError(f"the lag-{lag} propagator K = C(tau) C(0)^-1 has real eigenvalue(s) "
                         f"<= 0 ({ev[bad].real}); it has no real matrix logarithm. Use a shorter "
                         "lag or another Cdot estimator (cdot_lagged)")
    if np.any(np.abs(ev) >= 1.0):
        warnings.warn(f"the lag-{lag} propagator has eigenvalues of modulus >= 1 "
                      f"({np.abs(ev).max():.4g}): the fitted linear dynamics do not decay",
                      GeneratorWarning, stacklevel=2)
    L = sla.logm(K)
    if np.iscomplexobj(L):
        im = np.max(np.abs(L.imag))
        if im > imag_tol * max(np.max(np.abs(L.real)), 1e-300):
            raise ValueError(f"logm of the lag-{lag} propagator is complex (max |imag| = "
                             f"{im:.3g}); use a shorter lag or cdot_lagged")
        L = L.real
    resid = float(np.linalg.norm(sla.expm(L) - K, 1) / np.linalg.norm(K, 1))
    tau = lag * dt
    cdot = L @ C0 / tau
    diag = {"estimator": "logm", "tau": tau, "lag": lag, "K": K, "eigenvalues": ev,
            "n_pairs": m.M, "logm_residual": resid}
    return cdot, diag
