"""Statistics of one time series: autocorrelation functions (FFT), the integrated
autocorrelation time and the effective sample size.

* :func:`acf` of one record (the full-record mean, biased normalization);
* :func:`integrated_time_from_acf`: the one rule turning an ACF into ``tau``, used by
  :func:`integrated_autocorrelation_time` and by :func:`xlangevin.compare` (its default number
  of ACF lags);
* ``_sequence_acf``: the ACF of a record made of several sequences (members, pieces between
  time gaps), pooled within each member, as :func:`xlangevin.compare` reports it;
* :func:`lagged_cross_covariance`: ``Cov(a(t + k), b(t))`` of two multivariate series over the
  sequences of a record (the fluctuation-dissipation response, :mod:`xlangevin.linear_response`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["acf", "integrated_time_from_acf", "integrated_autocorrelation_time",
           "effective_sample_size", "lagged_cross_covariance", "lagged_cross_sums"]


def acf(x, max_lag: int | None = None, axis: int = 0) -> np.ndarray:
    """Autocorrelation ``C(k) / C(0)`` along ``axis`` for lags ``0..max_lag``, via FFT.

    ``C(k) = mean_t (x_t - m)(x_{t+k} - m)`` with the full-record mean ``m`` and the biased
    (1/n) normalization, which keeps the estimate positive definite.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples along axis {axis}, got {n}")
    max_lag = n - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n:
        raise ValueError(f"max_lag must be in [0, {n - 1}], got {max_lag}")
    y = x - x.mean(axis=0)
    nfft = 1 << int(np.ceil(np.log2(2 * n - 1)))
    f = np.fft.rfft(y, n=nfft, axis=0)
    c = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[: max_lag + 1] / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = c / c[0]
    return np.moveaxis(r, 0, axis)


def integrated_time_from_acf(rho, axis: int = 0) -> np.ndarray:
    """``tau = 1 + 2 sum_{k=1}^{K-1} rho(k)`` in lag steps, per column, from an ACF ``rho``
    with lag 0 first along ``axis``.

    ``K`` is the first lag ``k >= 1`` where ``rho(k)`` is negative or undefined (NaN: a
    constant series, or a lag no sequence reaches), or the number of lags given: the
    initial-positive-sequence window. Only non-negative terms are summed, so ``tau >= 1``
    (``tau = 1`` for a constant series).
    """
    r = np.moveaxis(np.asarray(rho, dtype=np.float64), axis, 0)
    r2 = r.reshape(r.shape[0], -1)
    tau = np.empty(r2.shape[1])
    for j in range(r2.shape[1]):
        rj = r2[1:, j]
        end = np.flatnonzero(~(rj >= 0))
        tau[j] = 1.0 + 2.0 * rj[: end[0] if end.size else rj.size].sum()
    return tau.reshape(r.shape[1:])


def integrated_autocorrelation_time(x, axis: int = 0) -> np.ndarray:
    """``tau = 1 + 2 sum_{k>=1} rho(k)`` in samples, summed up to the first negative ``rho``
    (initial-positive-sequence window, :func:`integrated_time_from_acf`), per column."""
    return integrated_time_from_acf(acf(x, axis=axis), axis=axis)


def effective_sample_size(x, axis: int = 0) -> np.ndarray:
    """``n / tau``: the number of effectively independent samples, per column."""
    n = np.asarray(x).shape[axis]
    return n / integrated_autocorrelation_time(x, axis=axis)


def _autocov_sums(y, k_max):
    """``c(k) = sum_t y_t y_{t+k}`` for k = 0..k_max (columns of y, already centred), by FFT,
    features processed in blocks to bound memory."""
    n, d = y.shape
    from scipy.fft import irfft, next_fast_len, rfft

    nfft = next_fast_len(n + k_max)
    out = np.empty((k_max + 1, d))
    block = max(1, int(2**24 // nfft))
    for j in range(0, d, block):
        f = rfft(y[:, j:j + block], n=nfft, axis=0)
        out[:, j:j + block] = irfft(f * np.conj(f), n=nfft, axis=0)[: k_max + 1]
    return out


def _sequence_acf(X, bounds, n_t, n_lags, stride):
    """ACF per group (member) at lags ``0, stride, ..., n_lags*stride`` samples.

    ``X`` (n_samples, d) holds the groups one after the other, ``n_t`` samples each; ``bounds``
    are its sequence boundaries (:meth:`FeatureSpace.sequence_bounds`). Each sequence (member,
    or a piece between time gaps) is centred on its own mean; products ``y_t y_{t+k}`` are
    summed within sequences only (never across members or gaps) and pooled over the sequences
    of one member: ``rho(k) = sum_s c_s(k) / sum_s c_s(0)``. Lags no sequence of a member
    reaches are NaN. Returns (n_groups, n_lags + 1, d).
    """
    kf = n_lags * stride
    n_groups = int(bounds[-1] // n_t)
    d = X.shape[1]
    num = np.zeros((n_groups, kf + 1, d))
    reach = np.full(n_groups, -1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        if n < 2:
            continue
        g = int(a // n_t)
        k = min(kf, n - 1)
        seg = np.asarray(X[a:b], dtype=np.float64)
        num[g, : k + 1] += _autocov_sums(seg - seg.mean(axis=0), k)
        reach[g] = max(reach[g], k)
    num = num[:, ::stride]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / num[:, :1]
    lags = np.arange(n_lags + 1) * stride
    r[lags[None, :] > reach[:, None]] = np.nan
    return r


def lagged_cross_covariance(a, b, bounds, max_lag: int, block: int = 1 << 15) -> np.ndarray:
    """``C[k, i, j] = mean_t (a_i(t + k) - <a_i>)(b_j(t) - <b_j>)`` for ``k = 0..max_lag``
    samples, the pairs ``(t, t + k)`` within the sequences ``[bounds[s], bounds[s + 1])`` only
    (members, pieces between gaps), means over the whole record: (max_lag + 1, p, q).

    By FFT over blocks of ``block`` origins ``t`` (each with the ``max_lag`` samples of ``a``
    after it), so the cost is O(n log(block + max_lag)) for all lags (never a loop over lags)
    and the memory is bounded by the block, not the record. Lags no sequence reaches raise
    ``ValueError``."""
    sums, counts = lagged_cross_sums(a, b, bounds, max_lag, [0, len(a)], block)
    return sums[0] / counts[0][:, None, None]


def lagged_cross_sums(a, b, bounds, max_lag: int, edges, block: int = 1 << 15):
    """The sums behind :func:`lagged_cross_covariance`, split by the origin ``t`` into the
    batches ``[edges[g], edges[g + 1])``: ``(sums (n_batches, max_lag + 1, p, q), counts
    (n_batches, max_lag + 1))``, in one pass (a pair whose later sample lies in the next batch
    counts in its origin's batch)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(0), b - b.mean(0)
    edges = np.asarray(edges)
    sums = np.zeros((len(edges) - 1, max_lag + 1, a.shape[1], b.shape[1]))
    counts = np.zeros((len(edges) - 1, max_lag + 1))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if stop - start < 1:
            continue
        k = min(max_lag, int(stop - start) - 1)
        inner = edges[(edges > start) & (edges < stop)]
        cuts = np.union1d(np.union1d(np.arange(start, stop, block), inner), [stop])
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            g = int(np.searchsorted(edges, t0, side="right")) - 1
            sums[g, :k + 1] += _block_cross_sums(a[t0:min(t1 + k, stop)], b[t0:t1], k)
            counts[g, :k + 1] += np.maximum(np.minimum(t1, stop - np.arange(k + 1)) - t0, 0)
    if counts.sum(0)[-1] == 0:
        raise ValueError(f"no sequence of the record is longer than max_lag = {max_lag} "
                         f"samples (the longest has {int(np.max(np.diff(bounds)))}); give "
                         "fewer lags")
    return sums, counts


def _block_cross_sums(a, b, k_max):
    """``sum_t a(t + k) b(t)^T`` for ``k = 0..k_max`` over the origins ``t`` of ``b`` (``a``
    extends up to ``k_max`` samples past them), by FFT, columns of ``a`` in blocks."""
    from scipy.fft import irfft, next_fast_len, rfft

    nfft = next_fast_len(len(b) + k_max)          # >= len(a): no index m + k wraps around
    fb = np.conj(rfft(b, n=nfft, axis=0, workers=-1))
    out = np.empty((k_max + 1, a.shape[1], b.shape[1]))
    step = max(1, int(2**23 // (nfft * b.shape[1])))
    for i in range(0, a.shape[1], step):
        fa = rfft(a[:, i:i + step], n=nfft, axis=0, workers=-1)
        out[:, i:i + step] = irfft(fa[:, :, None] * fb[:, None, :], n=nfft, axis=0,
                                   workers=-1)[:k_max + 1]
    return out
