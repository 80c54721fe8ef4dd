"""What the data layer hands to estimators: built once per fit, shared by nested estimators."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from .checks import DataError, is_dask
from .space import FeatureSpace
from .timeaxis import last_time

__all__ = ["FeatureData", "feature_data"]


@dataclass(frozen=True)
class FeatureData:
    """A data set seen by an estimator.

    ``space`` (the fitted :class:`FeatureSpace`), ``X`` (n_samples, n_features) in its
    standardized units (numpy, read-only, or dask: then nothing was computed), ``bounds`` (the
    sequence bounds of :meth:`FeatureSpace.sequence_bounds`, or None when not asked for) and
    ``time_origin`` (the last value of the sample coordinate, or None).
    """

    space: FeatureSpace
    X: object
    bounds: np.ndarray | None = None
    time_origin: object = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def is_dask(self) -> bool:
        return is_dask(self.X)

    def in_memory(self) -> "FeatureData":
        """The same data with ``X`` a contiguous, read-only numpy array (dask is computed)."""
        if isinstance(self.X, np.ndarray) and self.X.flags.c_contiguous:
            return self
        return replace(self, X=_read_only(np.ascontiguousarray(np.asarray(self.X))))

    def as_dtype(self, dtype) -> "FeatureData":
        """The same data handed over as ``dtype`` (float32 or float64): ``X`` cast and the
        space's dtype set, as if the data layer had been asked for ``dtype``."""
        dtype = np.dtype(dtype)
        if self.space.dtype == dtype and self.X.dtype == dtype:
            return self
        X = self.X.astype(dtype)
        return replace(self, space=self.space.with_dtype(dtype),
                       X=X if is_dask(X) else _read_only(np.ascontiguousarray(X)))


def _read_only(X):
    X.setflags(write=False)
    return X


def _as_labeled(data, dim):
    """xarray input as given; a plain (n, d) array (or (n,)) as ``DataArray(dims=(dim,
    "feature"), name="x")``: the one place where arrays are lifted into the data layer."""
    if isinstance(data, (xr.DataArray, xr.Dataset)):
        return data
    arr = data if is_dask(data) else np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"expected xarray data or an array of shape (n_samples, n_features), "
                        f"got shape {np.shape(data)}")
    return xr.DataArray(arr, dims=(dim, "feature"), name="x")


def feature_data(data, dim: str = "time", variables=None, dtype=np.float64,
                 standardize: bool = True, sequences: bool = False,
                 reduce=None, member_dim: str | None = "member") -> FeatureData:
    """Fit the data layer on ``data`` (xarray, or an (n, d) array of consecutive samples in
    physical units) and transform it, once. ``reduce`` (an :class:`~xlangevin.EOF`) makes the
    features the leading principal components of a gridded field; ``member_dim`` names the dim
    of independent ensemble members (sequences).

    ``sequences=True`` also finds the sequence bounds (members, gaps), which needs a regular
    sample coordinate. ``X`` is standardized unless ``standardize=False``; dask-backed data stay
    lazy, numpy arrays are made contiguous and read-only.
    """
    obj = _as_labeled(data, dim)
    space = FeatureSpace.fit(obj, dim=dim, variables=variables, dtype=dtype,
                             standardize=standardize, require_regular=sequences,
                             reduce=reduce, sequence_dim=member_dim)
    X = space.transform(obj)
    if not is_dask(X):
        X = _read_only(np.ascontiguousarray(X))
    bounds = space.sequence_bounds(obj) if sequences else None
    return FeatureData(space, X, bounds, last_time(obj, dim))
