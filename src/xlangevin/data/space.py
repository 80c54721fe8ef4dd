"""FeatureSpace: xarray <-> (n_samples, n_features) arrays, standardization and unit maps.

Only the data layer knows about xarray labels. :class:`FeatureSpace` is fitted once on a Dataset
or DataArray and then

* turns labeled data into a 2-D array ``X`` (samples x features): the sample dim (default
  ``"time"``) and an optional sequence dim (default ``"member"`` when present) become samples,
  every other dim of every chosen variable is stacked into ``feature``;
* standardizes ``x~ = S^{-1} (x - m)`` with ``S = diag(scale)`` (per-feature std), and maps the
  learned objects back to physical units (METHODS.md §0):
  ``s(x) = S^{-1} s~(x~)``, ``Phi = S Phi~ S``, ``Sigma = S Sigma~`` (V is invariant);
* tells where sequences start and stop (members, gaps in the time axis), so that no transition or
  lag is ever counted across a join;
* restores arrays to labeled xarray objects with the original variable names, dims, coords and
  attrs.
"""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

from .checks import DataError, constant_features, is_dask
from .eof import grid_weights
from .layout import VariableLayout, as_dataset, chosen_variables, variable_layouts
from .mask import find_mask
from .spacefile import space_state, space_to_dataset
from .timeaxis import grid_positions, irregular_steps_error, sample_coordinate, time_info

__all__ = ["FeatureSpace", "VariableLayout"]


class FeatureSpace:
    """The xarray <-> array transform of one fitted data set (see module docstring).

    Use :meth:`FeatureSpace.fit` to build one. Attributes: ``sample_dim``, ``sequence_dim``
    (or None), ``layouts`` (one :class:`VariableLayout` per variable), ``mean`` and ``scale``
    (float64, physical units, shape (n_features,)), ``dt`` (sample spacing in ``time_units``),
    ``kind`` ("Dataset" or "DataArray"), ``keep`` (bool over the stacked grid: False at masked
    points, NaN at every sample; None when nothing is masked) and ``reduction`` (a fitted
    :class:`~xlangevin.data.eof.EOFReduction` whose PCs are the features, or None).
    """

    def __init__(self, *, sample_dim, sequence_dim, layouts, mean, scale, template, kind,
                 dataarray_name, time, dt, dtype, standardize, keep=None, reduction=None):
        self.sample_dim = sample_dim
        self.sequence_dim = sequence_dim
        self.layouts = tuple(layouts)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self._template = template
        self.kind = kind
        self.dataarray_name = dataarray_name
        self.time = dict(time)
        self.dt = float(dt)
        self.dtype = np.dtype(dtype)
        self.standardize = bool(standardize)
        self.keep = None if keep is None or np.all(keep) else np.array(keep, dtype=bool)
        self.reduction = reduction
        for a in (self.mean, self.scale) + (() if self.keep is None else (self.keep,)):
            a.setflags(write=False)

    # ---------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, data, dim: str = "time", variables=None, sequence_dim: str | None = "member",
            standardize: bool = True, dtype=np.float64, require_regular: bool = False,
            reduce=None):
        """Learn the layout, coordinates and (optionally) mean/std of ``data``.

        Parameters
        ----------
        data : xr.Dataset or xr.DataArray, numpy- or dask-backed.
        dim : the sample (time) dim.
        variables : names of the data variables to use (Dataset only); default all data
            variables that have ``dim``.
        sequence_dim : a dim of independent sequences (ensemble members); used when present.
            A dim with a usual ensemble name (``ENSEMBLE_DIMS``: ``realization``, ``number``,
            ``member_id``, ...) that is not named here raises a DataError: taken as features it
            would give a larger, wrong model.
        standardize : store per-feature mean and std (otherwise mean 0, scale 1).
        dtype : float64 or float32, the dtype of the arrays handed to estimators.
        require_regular : raise if the sample coordinate is not regular up to gaps.
        reduce : None, or an :class:`~xlangevin.data.eof.EOF` reduction: the features are then
            the field's leading principal components (docs/fields.md).

        Notes
        -----
        Points that are NaN at every sample (land) are a mask: dropped here, NaN again in
        every field :meth:`inverse_transform` returns. Other NaNs raise a DataError.
        """
        ds, kind, da_name = as_dataset(data, variables)
        if dim not in ds.dims:
            raise DataError(f"sample dim {dim!r} not found; the data has dims {tuple(ds.dims)}. "
                            "Pass dim=... to name the sample (time) dim")
        _refuse_unnamed_ensemble(ds, dim, sequence_dim)
        if sequence_dim is not None and (sequence_dim not in ds.dims or sequence_dim == dim):
            sequence_dim = None
        names = chosen_variables(ds, dim, variables)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise DataError(f"dtype must be float32 or float64, got {dtype}")
        lead = (sequence_dim, dim) if sequence_dim else (dim,)
        layouts = variable_layouts(ds, names, lead)
        n_features = sum(lay.size for lay in layouts)
        time, dt = _sample_axis(ds, dim, require_regular)
        template = ds[names].isel({d: 0 for d in lead}, drop=True)
        # keep the coords along feature dims (stacked lat/lon levels, station names, 2-D
        # lat/lon of curvilinear grids); scalar ones do not label features
        template = template.drop_vars([c for c in template.coords if template[c].ndim == 0])
        space = cls(sample_dim=dim, sequence_dim=sequence_dim, layouts=layouts,
                    mean=np.zeros(n_features), scale=np.ones(n_features), template=template,
                    kind=kind, dataarray_name=da_name, time=time, dt=dt, dtype=dtype,
                    standardize=standardize)
        keep = find_mask(space, ds)
        if not keep.all():
            space = cls(**{**space._state(), "keep": keep, "mean": np.zeros(int(keep.sum())),
                           "scale": np.ones(int(keep.sum()))})
        if reduce is not None:
            return space._reduced(ds, reduce)
        space._check_size(ds)
        if not standardize:
            return space
        mean, std, low, high = space._moments(ds)
        zero = np.flatnonzero(constant_features(low, high) | ~(std > 0))  # or underflowed
        if zero.size:
            raise DataError(f"{zero.size} constant feature(s) (values equal up to float64 "
                            "rounding, relative to their magnitude): "
                            f"{', '.join(space.feature_labels()[i] for i in zero[:5])}"
                            f"{' ...' if zero.size > 5 else ''}; drop them (e.g. "
                            "data.isel(...)) or pass standardize=False")
        return space.with_moments(mean, std)

    def _state(self) -> dict:
        return dict(sample_dim=self.sample_dim, sequence_dim=self.sequence_dim,
                    layouts=self.layouts, mean=self.mean, scale=self.scale,
                    template=self._template, kind=self.kind,
                    dataarray_name=self.dataarray_name, time=self.time, dt=self.dt,
                    dtype=self.dtype, standardize=self.standardize, keep=self.keep,
                    reduction=self.reduction)

    def _reduced(self, ds, reduce) -> "FeatureSpace":
        """This space with the EOF reduction ``reduce`` fitted on ``ds``: PCs as features,
        standardized by their own mean and std (unless ``standardize=False``)."""
        n = self.n_samples_of(ds)
        if n < 3:
            raise DataError(f"an EOF reduction needs at least 3 samples along "
                            f"{self.sample_dim!r}, got {n}")
        X = self._kept(ds)
        months = self.months(ds)
        red = reduce.fit(X, grid_weights(self, reduce.weights), months)
        space = FeatureSpace(**{**self._state(), "reduction": red,
                                "mean": np.zeros(red.n_modes), "scale": np.ones(red.n_modes)})
        if not self.standardize:
            return space
        pcs = red.project(X, months)
        pcs = np.asarray(pcs.compute() if is_dask(pcs) else pcs)
        return space.with_moments(pcs.mean(axis=0), pcs.std(axis=0))

    def months(self, data):
        """Calendar month (1..12) of each sample in :meth:`transform`'s order, for a seasonal
        EOF reduction; None otherwise or without a datetime/cftime sample coordinate."""
        if self.reduction is not None and not self.reduction.seasonal:
            return None
        ds = self._dataset(data)
        coord = ds[self.sample_dim] if self.sample_dim in ds.coords else None
        if coord is None or not (np.issubdtype(coord.dtype, np.datetime64)
                                 or coord.dtype == object):
            return None
        n_seq = ds.sizes[self.sequence_dim] if self.sequence_dim in ds.dims else 1
        return np.tile(np.asarray(coord.dt.month.values, dtype=np.int64), n_seq)

    def with_moments(self, mean, scale) -> "FeatureSpace":
        """A copy with another standardization ``x~ = (x - mean) / scale``."""
        new = copy.copy(self)
        new.mean = np.array(mean, dtype=np.float64)
        new.scale = np.array(scale, dtype=np.float64)
        for a in (new.mean, new.scale):
            a.setflags(write=False)
        return new

    def with_dtype(self, dtype) -> "FeatureSpace":
        """A copy that hands arrays of ``dtype`` (float32 or float64) to estimators."""
        new = copy.copy(self)
        new.dtype = np.dtype(dtype)
        return new

    def _check_size(self, ds):
        n = self.n_samples_of(ds)
        if n < 2:
            raise DataError(f"need at least 2 samples along {self.sample_dim!r}, got {n}")
        if n < self.n_features:
            raise DataError(f"fewer samples ({n}) than features ({self.n_features}); a "
                            "stationary density cannot be learned: use a longer record or "
                            "fewer variables/points, or reduce a gridded field to its "
                            "leading EOFs: fit(..., reduce=xlangevin.EOF(variance=0.9))")

    # ---------------------------------------------------------------------------------------
    @property
    def n_grid(self) -> int:
        """Points of the stacked grid, masked ones included."""
        return sum(l.size for l in self.layouts)

    @property
    def n_kept(self) -> int:
        """Unmasked points of the stacked grid."""
        return self.n_grid if self.keep is None else int(self.keep.sum())

    @property
    def n_features(self) -> int:
        """Length of the vectors estimators see: PCs, or the unmasked points."""
        return self.reduction.n_modes if self.reduction is not None else self.n_kept

    @property
    def data_attrs(self) -> dict:
        """The fitted data's attrs (a DataArray's own, or a Dataset's global attrs)."""
        if self.kind == "DataArray":
            return dict(self._template[self.dataarray_name].attrs)
        return dict(self._template.attrs)

    @property
    def variables(self) -> list:
        return [l.name for l in self.layouts]

    @property
    def _lead(self):
        return (self.sequence_dim, self.sample_dim) if self.sequence_dim else (self.sample_dim,)

    def n_samples_of(self, data) -> int:
        ds = self._dataset(data)
        return int(np.prod([ds.sizes[d] for d in self._lead]))

    def feature_labels(self) -> list:
        """Readable names such as ``x[k=2]`` (``pc[mode=1]`` for EOF reductions), one per
        feature."""
        if self.reduction is not None:
            return [f"pc[mode={k + 1}]" for k in range(self.n_features)]
        labels = []
        for l in self.layouts:
            if not l.dims:
                labels.append(l.name)
                continue
            coords = [self._template[l.name][d].values for d in l.dims]
            for idx in np.ndindex(*l.shape):
                inner = ", ".join(f"{d}={c[i]}" for d, c, i in zip(l.dims, coords, idx))
                labels.append(f"{l.name}[{inner}]")
        return labels if self.keep is None else [a for a, k in zip(labels, self.keep) if k]

    def feature_coords(self, dim: str = "feature") -> dict:
        """Coordinates for a feature dim named ``dim``: index, ``variable`` and ``label``."""
        names = np.concatenate([[l.name] * l.size for l in self.layouts]).astype(str)
        names = ["pc"] * self.n_features if self.reduction is not None else \
            names if self.keep is None else names[self.keep]
        suffix = "" if dim == "feature" else f"_{dim}"
        return {dim: (dim, np.arange(self.n_features)),
                f"variable{suffix}": (dim, names),
                f"label{suffix}": (dim, np.asarray(self.feature_labels(), dtype=str))}

    # ---------------------------------------------------------------------------------------
    def _dataset(self, data):
        if isinstance(data, xr.DataArray):
            name = data.name if data.name is not None else "data"
            if self.kind == "DataArray":
                name = self.dataarray_name if len(self.layouts) == 1 else name
            return data.to_dataset(name=name)
        if isinstance(data, xr.Dataset):
            return data
        raise DataError(f"expected an xarray Dataset or DataArray, got {type(data).__name__}")

    def _variable_block(self, ds, layout):
        """(n_samples, size) view of one variable, numpy or dask, in feature order."""
        if layout.name not in ds.data_vars:
            raise DataError(f"variable {layout.name!r} missing; the model was fitted on "
                            f"{self.variables}")
        arr = ds[layout.name]
        if self.sample_dim not in arr.dims:
            raise DataError(f"sample dim {self.sample_dim!r} not in {layout.name!r} dims "
                            f"{arr.dims}")
        lead = tuple(d for d in self._lead if d in arr.dims)
        if set(arr.dims) != set(lead + layout.dims):
            raise DataError(f"variable {layout.name!r} has dims {arr.dims}; the model was "
                            f"fitted on {self._lead + layout.dims}")
        shape = tuple(arr.sizes[d] for d in layout.dims)
        if shape != layout.shape:
            raise DataError(f"variable {layout.name!r} has feature shape {shape} over "
                            f"{layout.dims}; the model was fitted on {layout.shape}")
        data = arr.transpose(*lead, *layout.dims).data
        n = int(np.prod([arr.sizes[d] for d in lead]))
        return data.reshape((n, layout.size))

    def _blocks(self, ds):
        return [self._variable_block(ds, l) for l in self.layouts]

    def _check_values(self, ds):
        """Raise on NaN/inf (count and first location), except at the fitted mask."""
        keep = find_mask(self, ds)
        lost = ~keep if self.keep is None else self.keep & ~keep
        if lost.any():
            raise DataError(f"{int(lost.sum())} point(s) are NaN at every sample where the "
                            f"fitted data have values, e.g. "
                            f"{self._grid_labels()[int(np.argmax(lost))]}; fill them first")

    def _grid_labels(self):
        return FeatureSpace(**{**self._state(), "keep": None, "reduction": None}
                            ).feature_labels()

    def _moments(self, ds):
        """Per-feature mean, std (population), minimum and maximum (float64), as chunk-wise
        reductions (one compute per block) for dask input."""
        out = []
        for block in self._blocks(ds):
            if is_dask(block):
                import dask

                b = block.astype(np.float64)
                mu = b.sum(axis=0) / block.shape[0]
                var = ((b - mu) ** 2).sum(axis=0) / block.shape[0]
                mu, var, low, high = dask.compute(mu, var, b.min(axis=0), b.max(axis=0))
            else:
                b = np.asarray(block, dtype=np.float64)
                mu, var, low, high = b.mean(axis=0), b.var(axis=0), b.min(axis=0), b.max(axis=0)
            out.append([np.asarray(mu), np.sqrt(np.asarray(var)), np.asarray(low),
                        np.asarray(high)])
        keep = slice(None) if self.keep is None else self.keep
        return tuple(np.concatenate(parts)[keep] for parts in zip(*out))

    # ---------------------------------------------------------------------------------------
    def transform(self, data, standardize: bool | None = None, check: bool = True):
        """Labeled data -> array (n_samples, n_features) in standardized units.

        Samples are ordered sequence-major (all times of member 0, then member 1, ...). The
        result is numpy, or dask when the input is dask-backed (then nothing is computed).
        ``standardize=False`` returns physical units.
        """
        ds = self._dataset(data)
        X = self._kept(ds, check)
        if self.reduction is not None:
            X = self.reduction.project(X, self.months(ds))
        if standardize is None or standardize:
            X = (X - self.mean) / self.scale
        return X.astype(self.dtype)

    def _kept(self, ds, check=False):
        """(n_samples, n_kept) physical float64 values of the unmasked points."""
        blocks = self._blocks(ds)
        if check and not any(is_dask(b) for b in blocks):
            self._check_values(ds)
        if any(is_dask(b) for b in blocks):
            import dask.array as dsa

            X = dsa.concatenate([dsa.asarray(b) for b in blocks], axis=1)
        else:
            X = np.concatenate([np.asarray(b) for b in blocks], axis=1)
        X = X.astype(np.float64)
        return X if self.keep is None else X[:, self.keep]

    def sequence_bounds(self, data) -> np.ndarray:
        """Start/stop indices of the contiguous sequences in :meth:`transform`'s sample order.

        A new sequence starts at each member and after every gap in the sample coordinate (a
        step that is a multiple > 1 of the regular step). Returns ``b`` with sequences
        ``X[b[i]:b[i+1]]``. Raises on irregular steps.
        """
        ds = self._dataset(data)
        coord = ds[self.sample_dim] if self.sample_dim in ds.coords else None
        n_t = ds.sizes[self.sample_dim]
        positions, _, _, found = grid_positions(coord, self.time if coord is not None else
                                        {"kind": "index"})
        if found is not None:
            raise irregular_steps_error(self.sample_dim, found, self.time)
        cuts = np.flatnonzero(np.diff(positions) > 1) + 1
        starts = np.concatenate([[0], cuts])
        n_seq = ds.sizes[self.sequence_dim] if self.sequence_dim else 1
        all_starts = (np.arange(n_seq)[:, None] * n_t + starts[None, :]).ravel()
        return np.append(all_starts, n_seq * n_t).astype(np.int64)

    def to_physical(self, X):
        """Standardized states -> physical units: ``x = m + S x~``."""
        return np.asarray(X) * self.scale + self.mean

    def to_standard(self, X):
        """Physical states -> standardized units: ``x~ = S^{-1} (x - m)``."""
        return (np.asarray(X) - self.mean) / self.scale

    def score_to_physical(self, s):
        """``s(x) = S^{-1} s~(x~)`` (score has units 1 / [x])."""
        return np.asarray(s) / self.scale

    def score_to_standard(self, s):
        return np.asarray(s) * self.scale

    def matrix_to_physical(self, M):
        """Mobility-like matrices: ``Phi = S Phi~ S`` (units [x]^2 / time)."""
        return self.scale[:, None] * np.asarray(M) * self.scale[None, :]

    def matrix_to_standard(self, M):
        return np.asarray(M) / self.scale[:, None] / self.scale[None, :]

    def factor_to_physical(self, L):
        """Noise factors: ``Sigma = S Sigma~`` (so ``Sigma Sigma^T = S Phi_S~ S``)."""
        return self.scale[:, None] * np.asarray(L)

    def factor_to_standard(self, L):
        return np.asarray(L) / self.scale[:, None]

    def jacobian_to_physical(self, J):
        """Score Jacobians ``ds/dx = S^{-1} (ds~/dx~) S^{-1}``; works on stacks (..., d, d)."""
        return np.asarray(J) / self.scale[:, None] / self.scale[None, :]

    # ---------------------------------------------------------------------------------------
    def inverse_transform(self, X, standardized: bool = True, dims=None, coords=None,
                          attrs=None, pcs: bool = False):
        """Array -> labeled data shaped like the fitted data.

        ``X`` has shape (..., n_features); its leading axes are named by ``dims`` (default: the
        sample dim for 2-D input, (sequence or "member", sample) for 3-D). ``coords`` supplies
        coordinate values for those dims (default ``0..n-1``, or the fitted sample coordinate
        continued with the fitted step, see :meth:`sample_coordinate`). Returns a Dataset if the
        space was fitted on a Dataset, else a DataArray. Masked points are NaN. With an EOF
        reduction ``X`` holds PCs: the fields are rebuilt on the grid (climatology added), or
        with ``pcs=True`` the PCs are returned as a DataArray ``pc`` over ``(..., "mode")``.
        """
        X = np.asarray(X)
        if X.shape[-1] != self.n_features:
            raise DataError(f"last axis has {X.shape[-1]} features; the model has "
                            f"{self.n_features}")
        if standardized:
            X = self.to_physical(X)
        if dims is None:
            if X.ndim == 2:
                dims = (self.sample_dim,)
            elif X.ndim == 3:
                dims = (self.sequence_dim or "member", self.sample_dim)
            else:
                raise DataError("pass dims=... to name the leading axes of X")
        dims = tuple(dims)
        if len(dims) != X.ndim - 1:
            raise DataError(f"dims {dims} do not name the {X.ndim - 1} leading axes of X")
        lead_shape = X.shape[:-1]
        coords = dict(coords or {})
        if self.sample_dim in dims and self.sample_dim not in coords:
            coords[self.sample_dim] = self.sample_coordinate(lead_shape[dims.index(self.sample_dim)])
        if self.reduction is not None and pcs:
            return self._pcs(X, dims, coords, attrs)
        X = self._on_grid(self._rebuilt(X, dims, coords) if self.reduction is not None else X)
        out = {}
        for l in self.layouts:
            tmpl = self._template[l.name]
            values = X[..., l.slice].reshape(lead_shape + l.shape)
            da = xr.DataArray(values, dims=dims + l.dims, coords=tmpl.coords,
                              attrs=dict(tmpl.attrs), name=l.name)
            out[l.name] = da
        ds = xr.Dataset(out, attrs=dict(self._template.attrs) if attrs is None else attrs)
        for d, v in coords.items():
            ds = ds.assign_coords({d: v})
        if self.sample_dim in ds.coords:
            ds[self.sample_dim].attrs.update(self.time.get("attrs", {}))
        if self.kind == "DataArray":
            da = ds[self.layouts[0].name]
            return da.rename(self.dataarray_name)
        return ds

    def _on_grid(self, X):
        """(..., n_kept) -> (..., n_grid) with NaN at the masked points."""
        if self.keep is None:
            return X
        full = np.full(X.shape[:-1] + (self.n_grid,), np.nan, dtype=X.dtype)
        full[..., self.keep] = X
        return full

    def _rebuilt(self, X, dims, coords):
        """Physical PCs (..., k) -> physical fields (..., n_kept) (months from the sample
        coordinate for a seasonal climatology)."""
        months = None
        if self.reduction.seasonal and self.sample_dim in dims:
            t = xr.DataArray(np.asarray(coords[self.sample_dim]), dims="t")
            if np.issubdtype(t.dtype, np.datetime64) or t.dtype == object:
                axis = dims.index(self.sample_dim)
                shape = [1] * len(dims)
                shape[axis] = -1
                months = np.broadcast_to(np.asarray(t.dt.month.values).reshape(shape),
                                         X.shape[:-1]).ravel()
        k = self.reduction.n_modes
        return self.reduction.reconstruct(X.reshape(-1, k), months).reshape(
            X.shape[:-1] + (self.n_kept,))

    def _pcs(self, X, dims, coords, attrs):
        units = {str(self._template[l.name].attrs.get("units", "")) for l in self.layouts}
        out = xr.DataArray(X, dims=dims + ("mode",), name="pc",
                           coords={**coords, "mode": np.arange(1, X.shape[-1] + 1)},
                           attrs={"long_name": "principal components (EOF reduction)",
                                  **({"units": units.pop()} if len(units) == 1 else {}),
                                  **(attrs or {})})
        if self.sample_dim in out.coords:
            out[self.sample_dim].attrs.update(self.time.get("attrs", {}))
        return out

    def pcs(self, data):
        """The PCs (physical units) of fields shaped like the fitted data (e.g. a generated
        ensemble), as a DataArray over the data's sample dims and ``mode``."""
        if self.reduction is None:
            raise DataError("this FeatureSpace has no EOF reduction; fit with reduce=EOF(...)")
        ds = self._dataset(data)
        if "member" in ds.dims and self.sequence_dim != "member":  # a generated ensemble
            return xr.concat([self.pcs(ds.isel(member=i)) for i in range(ds.sizes["member"])],
                             dim=ds["member"] if "member" in ds.coords else "member")
        lead, shape, coords = self.lead_layout(ds)
        X = np.asarray(self.transform(ds, standardize=False))
        return self._pcs(X.reshape(shape + (self.n_features,)), tuple(lead), coords, None)

    def lead_layout(self, like):
        """``(lead dims, their sizes, their coords)`` of an xarray input ``like``: the sample
        layout (member, sample dim) that results evaluated at ``like`` keep."""
        lead = [d for d in self._lead if d in like.dims]
        return (lead, tuple(like.sizes[d] for d in lead),
                {d: like[d] for d in lead if d in like.coords})

    def states_like(self, values, like, attrs=None):
        """Physical (n, d) vectors evaluated at the states of ``like`` -> xarray in the data's
        structure with ``like``'s sample dims and coordinates."""
        lead, shape, coords = self.lead_layout(like)
        return self.inverse_transform(np.asarray(values).reshape(shape + (self.n_features,)),
                                      standardized=False, dims=lead, coords=coords,
                                      attrs=dict(attrs or {}),
                                      pcs=self.reduction is not None)

    @staticmethod
    def match_input(out, like):
        """A one-variable Dataset result for a DataArray input -> that DataArray (a model fitted
        on a Dataset, evaluated on ``ds.x``, answers in kind)."""
        if (isinstance(like, xr.DataArray) and isinstance(out, xr.Dataset)
                and len(out.data_vars) == 1):
            return out[next(iter(out.data_vars))]
        return out

    def sample_coordinate(self, n: int, start=None):
        """``n`` values of the sample coordinate with the fitted step, from ``start``
        (:func:`xlangevin.data.timeaxis.sample_coordinate`)."""
        return sample_coordinate(self.time, self.dt, n, start)

    # ---------------------------------------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """Serialize to an xr.Dataset of plain arrays and attrs (NetCDF-safe, no pickle): the
        mask is NaN in ``mean__<variable>``; an EOF reduction adds its arrays on the grid."""
        return space_to_dataset(self)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> "FeatureSpace":
        """Inverse of :meth:`to_dataset`."""
        return cls(**space_state(ds))

    def __repr__(self):
        extra = "" if self.keep is None else f" masked={self.n_grid - self.n_kept}"
        if self.reduction is not None:
            extra += f" reduction={self.reduction!r}"
        return (f"<FeatureSpace {self.kind} variables={self.variables}{extra} "
                f"n_features={self.n_features} sample_dim={self.sample_dim!r} "
                f"sequence_dim={self.sequence_dim!r} dt={self.dt:g} "
                f"standardize={self.standardize}>")


def _sample_axis(ds, dim, require_regular):
    """``(time info, dt)`` of the sample coordinate (:mod:`.timeaxis`)."""
    coord = ds[dim] if dim in ds.coords else None
    time = time_info(coord, dim)
    _, dt, freq, found = grid_positions(coord, time)
    if found is not None and require_regular:
        raise irregular_steps_error(dim, found, time)
    time["freq"] = freq
    time["attrs"] = dict(coord.attrs) if coord is not None else {}
    return time, dt


#: dim names that CMIP, ERA5 and other archives give to ensemble members
ENSEMBLE_DIMS = ("member", "members", "member_id", "realization", "realisation", "number",
                 "ens", "ensemble", "ensemble_member")


def _refuse_unnamed_ensemble(ds, dim: str, sequence_dim) -> None:
    """A dim named like an ensemble that is not the sequence dim would silently become
    features: refuse it, naming the parameter that makes it members."""
    for name in ds.dims:
        if name in ENSEMBLE_DIMS and name not in (dim, sequence_dim):
            raise DataError(f"dim {name!r} looks like an ensemble (members) dim; pass "
                            f"member_dim={name!r} to treat its entries as independent members "
                            f"(sequences), or rename it if it holds features "
                            f"(data.rename({{{name!r}: 'station'}}))")
