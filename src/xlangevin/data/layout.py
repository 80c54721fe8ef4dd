"""Where each variable of a data set lives in the feature vector (the FeatureSpace's layout)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .checks import DataError

__all__ = ["VariableLayout", "as_dataset", "chosen_variables", "variable_layouts"]


@dataclass(frozen=True)
class VariableLayout:
    """Where one variable lives in the feature vector."""

    name: str
    dims: tuple  # non-sample dims, in the order they are flattened (C order)
    shape: tuple
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.size)



def as_dataset(data, variables):
    """Return (Dataset, kind, dataarray_name) for a Dataset or DataArray input."""
    if isinstance(data, xr.DataArray):
        name = data.name if data.name is not None else "data"
        if variables is not None and list(variables) != [name]:
            raise DataError(f"`variables` is only for Datasets; got a DataArray named {name!r}")
        return data.to_dataset(name=name), "DataArray", name
    if isinstance(data, xr.Dataset):
        return data, "Dataset", None
    raise DataError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}; "
                    "wrap arrays with xr.DataArray(x, dims=('time', 'feature'))")



def chosen_variables(ds, dim, variables) -> list:
    """The data variables to model: the given ones (checked) or all that have ``dim``."""
    if variables is None:
        names = [v for v in ds.data_vars if dim in ds[v].dims]
        if not names:
            raise DataError(f"no data variable has the sample dim {dim!r}")
        return names
    names = [variables] if isinstance(variables, str) else list(variables)
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        raise DataError(f"variables {missing} not in the data; it has {list(ds.data_vars)}")
    lacking = [v for v in names if dim not in ds[v].dims]
    if lacking:
        raise DataError(f"variables {lacking} do not have the sample dim {dim!r}")
    return names


def variable_layouts(ds, names, lead) -> list:
    """One :class:`VariableLayout` per variable: its non-sample dims, stacked in C order."""
    layouts, offset = [], 0
    for v in names:
        arr = ds[v]
        if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)) \
                or np.issubdtype(arr.dtype, np.complexfloating):
            raise DataError(f"variable {v!r} has non-numeric dtype {arr.dtype}; only real "
                            "numbers can be modeled")
        extra = [d for d in lead if d not in arr.dims]
        if extra:
            raise DataError(f"variable {v!r} lacks dim(s) {extra} that other variables have")
        fdims = tuple(d for d in arr.dims if d not in lead)
        layouts.append(VariableLayout(v, fdims, tuple(arr.sizes[d] for d in fdims), offset))
        offset += layouts[-1].size
    return layouts
