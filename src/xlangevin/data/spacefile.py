"""A :class:`~xlangevin.data.FeatureSpace` as one NetCDF group (plain arrays and attrs).

Per variable ``v``: ``mean__v`` (the standardization mean on the grid; with an EOF reduction
the climatological mean; NaN at masked points, which is how the mask is stored) and
``scale__v`` (the std; with an EOF reduction the point weights). An EOF reduction adds its
arrays on the grid (``eof__v`` over ``mode``, ``eof_climatology__v``) and the PCs'
``pc_mean`` / ``pc_scale``; its settings are the ``reduction`` attr.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from .._version import __version__
from ..io import json_default
from .checks import DataError
from .eof import EOFReduction
from .layout import VariableLayout

__all__ = ["space_to_dataset", "space_state"]


def _grid_vars(space, name, extra_dims, values) -> dict:
    """``{f"{name}__{v}": DataArray}``: kept-point values (..., n_kept) on each variable's
    grid (NaN at masked points), with the template's coords."""
    full = space._on_grid(np.asarray(values, dtype=np.float64))
    out = {}
    for lay in space.layouts:
        tmpl = space._template[lay.name]
        data = full[..., lay.slice].reshape(full.shape[:-1] + lay.shape)
        out[f"{name}__{lay.name}"] = xr.DataArray(data, dims=tuple(extra_dims) + lay.dims,
                                                  coords=tmpl.coords)
    return out


def space_to_dataset(space) -> xr.Dataset:
    red = space.reduction
    mean = space.mean if red is None else red.climatology.mean(axis=0)
    scale = space.scale if red is None else red.weights
    out = _grid_vars(space, "mean", (), mean)
    for lay in space.layouts:
        out[f"mean__{lay.name}"].attrs = dict(space._template[lay.name].attrs)
    out.update(_grid_vars(space, "scale", (), scale))
    attrs = {}
    if red is not None:
        arrays, attrs = red.to_arrays()
        for name, (dims, values) in arrays.items():
            out.update(_grid_vars(space, name, dims, values))
        out["pc_mean"] = xr.DataArray(space.mean, dims="mode")
        out["pc_scale"] = xr.DataArray(space.scale, dims="mode")
    ds = xr.Dataset(out)
    # stacked feature dims (pandas MultiIndex) are stored as their level coords
    multi = {d: list(idx.names) for d, idx in ds.indexes.items()
             if isinstance(idx, pd.MultiIndex) and d in ds.dims}
    ds = ds.reset_index(list(multi))
    for v in ds.variables.values():  # float64 on disk, whatever the source file used
        v.encoding = {}
    ds.attrs = {
        "xlangevin_object": "FeatureSpace",
        "xlangevin_version": __version__,
        "sample_dim": space.sample_dim,
        "sequence_dim": space.sequence_dim or "",
        "variables": json.dumps([[l.name, list(l.dims)] for l in space.layouts]),
        "kind": space.kind,
        "dataarray_name": space.dataarray_name or "",
        "time": json.dumps({k: v for k, v in space.time.items()}, default=str),
        "dt": space.dt,
        "dtype": space.dtype.name,
        "standardize": int(space.standardize),
        "data_attrs": json.dumps(dict(space._template.attrs), default=json_default),
        "multi_index": json.dumps(multi),
        **attrs,
    }
    return ds


def space_state(ds: xr.Dataset) -> dict:
    """The FeatureSpace constructor's arguments stored in ``ds`` (:func:`space_to_dataset`)."""
    if ds.attrs.get("xlangevin_object") != "FeatureSpace":
        raise DataError("this Dataset does not hold an xlangevin FeatureSpace")
    layouts, offset, tmpl = [], 0, {}
    ds = ds.set_index(json.loads(ds.attrs.get("multi_index", "{}")))
    spec = json.loads(ds.attrs["variables"])
    for name, dims in spec:
        m = ds[f"mean__{name}"].transpose(*dims)
        layouts.append(VariableLayout(name, tuple(dims), m.shape, offset))
        offset += layouts[-1].size
        tmpl[name] = m.rename(name)

    def grid(name):
        parts = []
        for lay in layouts:
            a = ds[f"{name}__{lay.name}"]
            extra = [d for d in a.dims if d not in lay.dims]
            a = np.asarray(a.transpose(*extra, *lay.dims).values, dtype=np.float64)
            parts.append(a.reshape(a.shape[:len(extra)] + (lay.size,)))
        return np.concatenate(parts, axis=-1)

    mean = grid("mean")
    keep = np.isfinite(mean)
    reduction = None
    if "reduction" in ds.attrs:
        arrays = {k: grid(k)[..., keep] for k in ("eof", "eof_weights", "eof_climatology")}
        reduction = EOFReduction.from_arrays(arrays, ds.attrs)
        mean, scale = ds["pc_mean"].values, ds["pc_scale"].values
    else:
        mean, scale = mean[keep], grid("scale")[keep]
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise DataError("the stored feature space is corrupt: its means must be finite and its "
                        "scales finite and positive")
    return dict(sample_dim=ds.attrs["sample_dim"], sequence_dim=ds.attrs["sequence_dim"] or None,
                layouts=layouts, mean=mean, scale=scale,
                template=xr.Dataset(tmpl, attrs=json.loads(ds.attrs["data_attrs"])),
                kind=ds.attrs["kind"], dataarray_name=ds.attrs["dataarray_name"] or None,
                time=json.loads(ds.attrs["time"]), dt=float(ds.attrs["dt"]),
                dtype=ds.attrs["dtype"], standardize=bool(int(ds.attrs["standardize"])),
                keep=keep, reduction=reduction)
