"""Masks of gridded fields: points that are NaN at every sample (land in an SST field).

A feature whose values are NaN at every sample is not data but a mask: :func:`find_mask` marks
it, the :class:`~xlangevin.data.FeatureSpace` drops it before anything is fitted and writes NaN
there again in every field it returns. A NaN (or an infinity) at some samples only is missing
data and raises a :class:`~xlangevin.data.DataError` that names the count and the first place.
"""

from __future__ import annotations

import numpy as np

from .checks import DataError, is_dask

__all__ = ["find_mask"]


def _counts(block):
    """Per-feature counts of NaN and of infinite values of an (n, p) block (one compute)."""
    if is_dask(block):
        import dask

        return tuple(np.asarray(c) for c in dask.compute(
            (block != block).sum(axis=0), (abs(block) == np.inf).sum(axis=0)))
    b = np.asarray(block)
    return np.isnan(b).sum(axis=0), np.isinf(b).sum(axis=0)


def find_mask(space, ds) -> np.ndarray:
    """The kept features of ``ds`` (bool over the stacked grid of ``space.layouts``): False
    where a feature is NaN at every sample. Raises a :class:`DataError` on a NaN that is absent
    at some samples, on any infinity, and when a variable is masked everywhere."""
    keep = []
    for lay in space.layouts:
        block = space._variable_block(ds, lay)
        n = block.shape[0]
        nans, infs = _counts(block)
        masked = nans == n
        bad = (infs > 0) | ((nans > 0) & ~masked)
        if bad.any():
            _raise_missing(space, ds, lay, block, bad, int((nans + infs)[bad].sum()))
        if masked.all():
            raise DataError(f"variable {lay.name!r} is NaN at every point and sample; drop it "
                            "(variables=[...])")
        keep.append(~masked)
    return np.concatenate(keep)


def _raise_missing(space, ds, lay, block, bad, count):
    """The error for missing values: count and the first place, named by coordinates."""
    values = np.asarray(block)
    row, col = np.argwhere(~np.isfinite(values) & bad[None, :])[0]
    arr = ds[lay.name]
    lead = [d for d in space._lead if d in arr.dims]
    idx = np.unravel_index(row, [arr.sizes[d] for d in lead]) + \
        np.unravel_index(col, lay.shape)
    loc = ", ".join(f"{d}={arr[d].values[i] if d in arr.coords else i}"
                    for d, i in zip(lead + list(lay.dims), idx))
    raise DataError(f"variable {lay.name!r} has {count} non-finite value(s) (NaN/inf) that "
                    f"vary along {space.sample_dim!r}, the first at {loc}; drop or fill them "
                    f"first (e.g. data.dropna({space.sample_dim!r}) or "
                    f"data.interpolate_na({space.sample_dim!r})). A point that is NaN at "
                    "every sample (land) is a mask and is dropped by itself")
