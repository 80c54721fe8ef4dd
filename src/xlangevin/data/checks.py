"""Input checks of the data layer, with errors that say what to change."""

from __future__ import annotations

import numpy as np

__all__ = ["DataError", "is_dask", "check_states", "check_periodic_field", "constant_features",
           "require_samples"]

#: a feature is constant when its values span at most this many float64 epsilons of their
#: magnitude (:func:`constant_features`)
CONSTANT_EPS = 16


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to change."""


def require_samples(n: int, needed: int, what: str, why: str) -> None:
    """Raise a :class:`DataError` unless there are at least ``needed`` samples.

    The one place where estimators demand a minimum record length: ``what`` names the
    estimator (e.g. ``"KGMM"``), ``why`` says what the samples are needed for. The message
    gives the count found, the count needed and the reason, e.g. ``KGMM needs at least 200
    samples, got 10: ...``.
    """
    n, needed = int(n), int(needed)
    if n < needed:
        raise DataError(f"{what} needs at least {needed} samples, got {n}: {why}. Use a longer "
                        "record (or more members)")


def constant_features(low, high) -> np.ndarray:
    """Mask of the features that are constant up to float64 rounding, from their minimum
    ``low`` and maximum ``high``: ``high - low <= 16 eps max(|low|, |high|)`` (``eps =
    2.2e-16``): identical values (an all-zero feature included), or values a few units in the
    last place apart, rounding only.

    The test is relative to the feature's magnitude, never absolute: a standard deviation of
    1e-12 (a field in SI units) is a scale, and the feature is standardized like the same data
    times 1e12. It is made on the range, which is exact, not on the computed standard
    deviation: that of a constant feature is the rounding error of its mean, which grows with
    the number of samples (64 eps of the value for 1000 samples of 0.1 in a two-column array).
    """
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    size = np.maximum(np.abs(low), np.abs(high))
    return ~(high - low > CONSTANT_EPS * np.finfo(np.float64).eps * size)


def is_dask(a) -> bool:
    """True for a dask array (checked without importing dask)."""
    return type(a).__module__.split(".", 1)[0] == "dask"


def check_states(x, n_features: int) -> tuple[np.ndarray, bool]:
    """States given as an array -> (float64 (n, d) array, whether a single (d,) state was
    given), with clear errors for a wrong shape or non-finite values."""
    X = np.asarray(x, dtype=np.float64)
    single = X.ndim == 1
    X = X[None, :] if single else X
    if X.ndim != 2 or X.shape[1] != n_features:
        raise DataError(f"expected states of shape (n, {n_features}) or ({n_features},), got "
                        f"{np.shape(x)}")
    if not np.all(np.isfinite(X)):
        raise DataError(f"{np.count_nonzero(~np.isfinite(X))} non-finite value(s) in the "
                        "input states")
    return X, single


def check_periodic_field(space, why: str) -> None:
    """Raise unless the data of ``space`` (a FeatureSpace) are one variable on one (periodic)
    feature dim, a field ``u(sample, x)`` whose circular shifts along ``x`` are meaningful."""
    layouts = space.layouts
    if getattr(space, "reduction", None) is not None or getattr(space, "keep", None) is not None:
        raise DataError(f"{why} needs the values of a full periodic grid; these features are "
                        "EOF principal components (reduce=...) or a grid with masked points "
                        "(NaN at every sample): fit the unmasked field without reduce=")
    if len(layouts) != 1 or len(layouts[0].dims) != 1:
        found = ", ".join(f"{lay.name}{lay.dims}" for lay in layouts)
        raise DataError(f"{why} needs a single variable on one periodic grid dim (a field "
                        f"u({space.sample_dim}, x)); the data has {found or 'no variables'}. "
                        "Select one variable (variables=[...]) on a 1-D grid")
