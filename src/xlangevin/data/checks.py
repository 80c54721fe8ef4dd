"""Input checks of the data layer, with errors that say what to change."""

from __future__ import annotations

import numpy as np

__all__ = ["DataError", "is_dask", "check_states", "check_periodic_field"]


class DataError(ValueError):
    """Input data that cannot be used as given; the message says what to change."""


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
    if len(layouts) != 1 or len(layouts[0].dims) != 1:
        found = ", ".join(f"{lay.name}{lay.dims}" for lay in layouts)
        raise DataError(f"{why} needs a single variable on one periodic grid dim (a field "
                        f"u({space.sample_dim}, x)); the data has {found or 'no variables'}. "
                        "Select one variable (variables=[...]) on a 1-D grid")
