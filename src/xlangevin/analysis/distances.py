"""Distances between the distributions of data and model.

* :func:`kl_divergence` and :func:`hellinger` of histograms (masses on a common grid);
* :func:`wasserstein1` of two 1-D samples;
* :func:`acf_rmse` between autocorrelation functions;
* the entropic optimal-transport distance of two sample sets is :func:`.ot.entropic_ot_distance`.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["KL_FLOOR", "kl_divergence", "hellinger", "wasserstein1", "acf_rmse"]

KL_FLOOR = 1e-10


def _as_masses(p, axis):
    p = np.asarray(p, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities/counts must be finite and non-negative")
    total = p.sum(axis=axis, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("each distribution needs a positive total mass")
    return p / total


def kl_divergence(p, q, floor: float = KL_FLOOR, axis=None):
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i log(p_i / q_i)`` of discrete
    distributions (histogram counts, masses or densities on a common uniform grid).

    ``p`` and ``q`` are normalized to unit mass over ``axis`` (default: all axes). Cells with
    ``p_i = 0`` contribute 0. Cells where ``q`` is empty would make the divergence infinite, so
    ``q`` is floored at ``floor`` (a mass per cell, default 1e-10) and renormalized: one empty
    cell holding data mass ``p_i`` then adds about ``p_i log(p_i / floor)`` (at most
    ``p_i * 23`` for the default), a large but finite penalty for a model that misses a region
    the data visit. Returns a float for ``axis=None``, else an array without ``axis``.
    """
    p = _as_masses(p, axis)
    q = _as_masses(q, axis)
    if p.shape != q.shape:
        raise ValueError(f"p and q have different shapes {p.shape} and {q.shape}")
    if floor < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    q = np.where(p > 0, np.maximum(q, floor), q)  # cells without data mass need no floor
    q = q / q.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
    out = terms.sum(axis=axis)
    out = np.maximum(out, 0.0)  # rounding can give -1e-17
    return float(out) if np.ndim(out) == 0 else out


def hellinger(p, q, axis=None):
    """Hellinger distance ``H = sqrt(1 - sum_i sqrt(p_i q_i))`` in [0, 1] of discrete
    distributions (normalized over ``axis``, default all axes). 0 for identical, 1 for disjoint
    supports. For two Gaussians ``H^2 = 1 - sqrt(2 s1 s2 / (s1^2 + s2^2))
    exp(-(m1 - m2)^2 / (4 (s1^2 + s2^2)))``."""
    p = _as_masses(p, axis)
    q = _as_masses(q, axis)
    if p.shape != q.shape:
        raise ValueError(f"p and q have different shapes {p.shape} and {q.shape}")
    bc = np.sqrt(p * q).sum(axis=axis)
    out = np.sqrt(np.clip(1.0 - bc, 0.0, 1.0))
    return float(out) if np.ndim(out) == 0 else out


def wasserstein1(x, y) -> float:
    """Wasserstein-1 (earth mover's) distance between the empirical distributions of two 1-D
    samples, ``int |F_x(t) - F_y(t)| dt`` (``scipy.stats.wasserstein_distance``), in the units
    of ``x``. ``W1(N(0, 1), N(m, 1)) = |m|``."""
    from scipy.stats import wasserstein_distance

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("wasserstein1 needs non-empty samples")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("wasserstein1: samples contain NaN or inf")
    return float(wasserstein_distance(x, y))


def acf_rmse(a, b, axis: int = -1):
    """Root-mean-square difference of two autocorrelation functions over the lags on ``axis``
    (``sqrt(mean_k (a_k - b_k)^2)``; lags where either is NaN are skipped)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ACFs have different shapes {a.shape} and {b.shape}")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        out = np.sqrt(np.nanmean((a - b) ** 2, axis=axis))
    return float(out) if np.ndim(out) == 0 else out
