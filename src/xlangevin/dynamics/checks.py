"""Input checks shared by the sequence estimators: labels, bounds, lags, sampling steps."""

from __future__ import annotations

import math

import numpy as np

from ..backends import kernel

__all__ = ["check_bounds", "check_lag", "check_dt", "check_labels", "as_2d"]


def check_bounds(bounds, n: int) -> np.ndarray:
    if bounds is None:
        return np.array([0, n], dtype=np.int64)
    b = np.asarray(bounds)
    if b.ndim != 1 or b.size < 2 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError("bounds must be a 1-D integer array [0, ..., n] with at least 2 entries "
                         "(sequences are X[b[i]:b[i+1]], see FeatureSpace.sequence_bounds)")
    b = b.astype(np.int64)
    if b[0] != 0 or b[-1] != n:
        raise ValueError(f"bounds must start at 0 and end at the number of samples {n}; "
                         f"got {b[0]} ... {b[-1]}")
    if np.any(np.diff(b) < 0):
        raise ValueError("bounds must be non-decreasing")
    return b


def check_lag(lag) -> int:
    if isinstance(lag, (bool, np.bool_)) or not isinstance(lag, (int, np.integer)) or lag < 1:
        raise ValueError(f"lag must be a positive integer (in samples), got {lag!r}")
    return int(lag)


def check_dt(dt) -> float:
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number, got {dt!r}")
    return dt


def check_labels(labels, n_states):
    """Labels as a contiguous int64 array and the number of states (validated, one pass)."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers (cell indices), got dtype {lab.dtype}")
    lab = np.ascontiguousarray(lab, dtype=np.int64)
    if lab.size:
        lo, hi = kernel("label_range")(lab)
    else:
        lo, hi = 0, -1
    if n_states is None:
        n_states = hi + 1
    if isinstance(n_states, (bool, np.bool_)) or not isinstance(n_states, (int, np.integer)) \
            or n_states < 1:
        raise ValueError(f"n_states must be a positive integer, got {n_states!r}")
    n_states = int(n_states)
    if lo < 0 or hi >= n_states:
        raise ValueError(f"labels must lie in [0, n_states) = [0, {n_states}); "
                         f"found values in [{lo}, {hi}]")
    return lab, n_states


def as_2d(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return X
