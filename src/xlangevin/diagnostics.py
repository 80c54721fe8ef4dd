"""Statistics of time series: autocorrelation functions and effective sample sizes.

(The comparison of data and simulations, PDFs and distances, builds on these.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["acf", "integrated_autocorrelation_time", "effective_sample_size"]


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


def integrated_autocorrelation_time(x, axis: int = 0) -> np.ndarray:
    """``tau = 1 + 2 sum_{k>=1} rho(k)`` in samples, summed up to the first negative ``rho``
    (initial-positive-sequence window), per column."""
    r = np.moveaxis(acf(x, axis=axis), axis, 0)
    r2 = r.reshape(r.shape[0], -1)
    tau = np.empty(r2.shape[1])
    for j in range(r2.shape[1]):
        neg = np.flatnonzero(r2[1:, j] < 0)
        stop = neg[0] + 1 if neg.size else r2.shape[0]
        tau[j] = max(1.0, 1.0 + 2.0 * r2[1:stop, j].sum())
    return tau.reshape(r.shape[1:])


def effective_sample_size(x, axis: int = 0) -> np.ndarray:
    """``n / tau``: the number of effectively independent samples, per column."""
    n = np.asarray(x).shape[axis]
    return n / integrated_autocorrelation_time(x, axis=axis)
