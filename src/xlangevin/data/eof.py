r"""EOF reduction of gridded fields, a stage of the data layer.

A field ``x(t, p)`` on grid points ``p`` (masked points already dropped, :mod:`.mask`) is
reduced to its leading principal components (PCs). With area weights ``w_p`` (``sqrt(cos
lat_p)`` for ``weights="coslat"``, so that squared weighted anomalies sum to an area integral)
and the climatology ``c(t, p)`` (the time mean, or the mean of each calendar month for
``anomalies="seasonal"``):

* the EOFs ``e_k(p)`` (orthonormal) are the leading right singular vectors of the weighted
  anomalies ``(x - c) w``, computed by xeofs (Rieger & Levang, "xeofs: Comprehensive EOF
  analysis in Python with xarray", JOSS 2024); ``n_modes`` is given or the smallest number that
  explains ``variance`` of the weighted variance;
* the PCs are ``pc_k(t) = sum_p (x(t, p) - c(t, p)) w_p e_k(p)`` (field units);
* a field is rebuilt as ``x(t, p) = c(t, p) + sum_k pc_k(t) e_k(p) / w_p`` (points with
  ``w_p = 0``, the poles, keep the climatology).

Projection and reconstruction are matrix products with the stored EOFs, so a saved model needs
only its arrays (no xeofs) to turn PCs back into fields. Both are linear in ``x``: the seasonal
climatology enters the PCs as ``c w e_k`` of the sample's month, so dask input stays lazy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .checks import DataError, is_dask

__all__ = ["EOF", "EOFReduction", "ANOMALIES"]

ANOMALIES = ("climatology", "seasonal", None)
#: names and ``standard_name``/``units`` that mark a latitude coordinate
LAT_NAMES = ("lat", "latitude", "nav_lat", "y_lat")
#: without ``n_modes``, at most this many modes are computed for the variance criterion
MAX_MODES = 200
#: exact (LAPACK) SVD of numpy input up to this many samples or points and 10x its square
#: values; larger fields and dask input use xeofs' randomized SVD (dask's ``svd_compressed``
#: for dask, a few passes over the data), accurate for the leading modes
FULL_SVD = 3000


@dataclass(frozen=True)
class EOF:
    """How to reduce a gridded field to its leading EOFs (module docstring).

    Parameters
    ----------
    n_modes : number of EOFs kept; None: the fewest that explain ``variance``.
    variance : fraction of the weighted variance the kept EOFs explain when ``n_modes`` is None.
    weights : ``"coslat"`` (``sqrt(cos lat)`` from a latitude coordinate in degrees), None
        (equal weights) or an xr.DataArray over the grid dims (``w_p`` itself).
    anomalies : ``"climatology"`` (the time mean removed), ``"seasonal"`` (the mean of each
        calendar month removed; needs a datetime or cftime sample coordinate) or None (nothing
        removed: the data are anomalies already).
    seed : of xeofs' randomized SVD (large grids).

    Pass it as ``reduce=`` to an estimator's ``fit`` or to ``ds.langevin.fit``; the model is
    fitted on the PCs and returns fields on the original grid.
    """

    n_modes: int | None = None
    variance: float = 0.9
    weights: object = "coslat"
    anomalies: str | None = "climatology"
    seed: int | None = 0

    def validate(self, n_samples: int, n_points: int) -> None:
        if self.n_modes is not None and (isinstance(self.n_modes, bool) or not isinstance(
                self.n_modes, (int, np.integer)) or self.n_modes < 1):
            raise ValueError(f"EOF n_modes must be a positive integer or None, got "
                             f"{self.n_modes!r}")
        if not (isinstance(self.variance, (int, float)) and 0 < self.variance <= 1):
            raise ValueError(f"EOF variance must be in (0, 1], got {self.variance!r}")
        if self.anomalies not in ANOMALIES:
            raise ValueError(f"EOF anomalies must be one of {ANOMALIES}, got "
                             f"{self.anomalies!r}")
        if not (self.weights is None or isinstance(self.weights, xr.DataArray)
                or self.weights == "coslat"):
            raise ValueError(f"EOF weights must be 'coslat', None or an xr.DataArray over the "
                             f"grid dims, got {self.weights!r}")
        top = min(n_samples - 1, n_points)
        if self.n_modes is not None and self.n_modes > top:
            raise DataError(f"EOF n_modes={self.n_modes} exceeds what {n_samples} samples of "
                            f"{n_points} points allow ({top}); ask for fewer modes")

    def fit(self, X, weights, months=None) -> "EOFReduction":
        """Fit on physical ``X`` (n, p), numpy or dask, with point weights ``weights`` (p,) and
        the calendar month (1..12) of each sample (``anomalies="seasonal"``)."""
        try:
            import xeofs
        except ImportError as err:  # pragma: no cover (xeofs is in the test extra)
            raise ImportError("the EOF reduction needs xeofs: pip install 'xlangevin[fields]'"
                              ) from err
        n, p = X.shape
        self.validate(n, p)
        clim, groups = climatology(X, self.anomalies, months)
        A = _apply_rows(X, groups, lambda b, g: b - clim[g])
        k_fit = self.n_modes or min(MAX_MODES, n - 1, p)
        exact = min(n, p) <= FULL_SVD and n * p <= FULL_SVD**2 * 10 and not is_dask(A)
        solver = xeofs.single.EOF(n_modes=k_fit, center=False, random_state=self.seed,
                                  check_nans=False, solver="full" if exact else "auto",
                                  solver_kwargs={"full_matrices": False} if exact else {})
        points = {"point": np.arange(p)}
        solver.fit(xr.DataArray(A, dims=("time", "point"),
                                coords={"time": np.arange(n), **points}), dim="time",
                   weights=xr.DataArray(weights, dims="point", coords=points))
        ratio = np.asarray(solver.explained_variance_ratio().values, dtype=np.float64)
        k = self.n_modes or int(min(np.searchsorted(np.cumsum(ratio), self.variance) + 1,
                                    ratio.size))
        E = solver.components().reindex(points).transpose("mode", "point")
        return EOFReduction(np.asarray(E.values[:k], dtype=np.float64), weights, clim,
                            ratio[:k], {"anomalies": self.anomalies,
                                        "weights": _weights_name(self.weights),
                                        "variance": self.variance,
                                        "n_modes_asked": self.n_modes})


def climatology(X, anomalies, months):
    """``(c, group)``: the climatology rows ``c`` (g, p) and each sample's row in it (the
    calendar month's for seasonal anomalies, else row 0)."""
    n, p = X.shape
    if anomalies is None:
        return np.zeros((1, p)), np.zeros(n, dtype=np.int64)
    if anomalies == "climatology":
        mean = X.mean(axis=0, dtype=np.float64)
        return np.asarray(mean.compute() if is_dask(mean) else mean)[None, :], \
            np.zeros(n, dtype=np.int64)
    if months is None:
        raise DataError("anomalies='seasonal' needs a datetime or cftime sample coordinate "
                        "(the calendar month of each sample); use anomalies='climatology'")
    months = np.asarray(months, dtype=np.int64)
    missing = sorted(set(range(1, 13)) - set(months.tolist()))
    if missing:
        raise DataError(f"anomalies='seasonal' needs every calendar month in the record; "
                        f"months {missing} are absent: use anomalies='climatology'")
    rows = [X[months == m].mean(axis=0, dtype=np.float64) for m in range(1, 13)]
    if is_dask(X):
        import dask

        rows = dask.compute(*rows)
    return np.stack([np.asarray(r) for r in rows]), months - 1


def _apply_rows(X, groups, fn, width=None):
    """``fn(rows of X, their groups)`` block by block (lazy for dask; the result has
    ``width`` columns, default those of ``X``)."""
    if not is_dask(X):
        return fn(np.asarray(X, dtype=np.float64), groups)
    import dask.array as dsa

    X = X.rechunk({1: -1})
    g = dsa.from_array(groups[:, None], chunks=(X.chunks[0], 1))
    return dsa.map_blocks(lambda b, gb: fn(b.astype(np.float64), gb[:, 0]), X, g,
                          dtype=np.float64, chunks=(X.chunks[0], (width or X.shape[1],)))


def _weights_name(weights) -> str:
    return "custom" if isinstance(weights, xr.DataArray) else str(weights)


class EOFReduction:
    """A fitted EOF reduction (module docstring): ``patterns`` ``e_k(p)`` (k, p), point
    ``weights`` ``w_p`` (p,), ``climatology`` (1 or 12, p), ``explained_variance_ratio`` (k,)
    and the ``config`` it was fitted with; ``p`` counts the kept (unmasked) points."""

    def __init__(self, patterns, weights, climatology, explained_variance_ratio, config):
        self.patterns = np.asarray(patterns, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.climatology = np.asarray(climatology, dtype=np.float64)
        self.explained_variance_ratio = np.asarray(explained_variance_ratio, np.float64)
        self.config = dict(config)
        w = self.weights
        self._loadings = np.divide(self.patterns, w, out=np.zeros_like(self.patterns),
                                   where=w > 0)                      # e_k(p) / w_p
        self._clim_pcs = (self.climatology * w) @ self.patterns.T    # (g, k)
        for a in (self.patterns, self.weights, self.climatology, self._loadings):
            a.setflags(write=False)

    @property
    def n_modes(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def seasonal(self) -> bool:
        return self.climatology.shape[0] == 12

    def _groups(self, months, n):
        if not self.seasonal:
            return np.zeros(n, dtype=np.int64)
        if months is None:  # no calendar: the annual mean of the monthly climatology
            return None
        return np.asarray(months, dtype=np.int64) - 1

    def project(self, X, months=None):
        """PCs (n, k) of physical fields ``X`` (n, p), numpy or dask (then lazy)."""
        groups = self._groups(months, X.shape[0])
        if groups is None:
            return (X * self.weights) @ self.patterns.T - self._clim_pcs.mean(axis=0)
        return _apply_rows(X, groups, lambda b, g: (b * self.weights) @ self.patterns.T
                           - self._clim_pcs[g], self.n_modes)

    def reconstruct(self, pcs, months=None):
        """Physical fields (n, p) of PCs (n, k): ``c + sum_k pc_k e_k / w``."""
        pcs = np.asarray(pcs, dtype=np.float64)
        groups = self._groups(months, pcs.shape[0])
        clim = self.climatology.mean(axis=0) if groups is None else self.climatology[groups]
        return pcs @ self._loadings + clim

    # -- saving: arrays over the kept points; the FeatureSpace puts them on the grid --------
    def to_arrays(self) -> tuple[dict, dict]:
        """``({name: (extra dims, array (..., p))}, attrs)`` for the model file."""
        arrays = {"eof": (("mode",), self.patterns), "eof_weights": ((), self.weights),
                  "eof_climatology": (("month",) if self.seasonal else ("clim",),
                                      self.climatology)}
        attrs = {"reduction": json.dumps({**self.config, "kind": "EOF",
                                          "explained_variance_ratio":
                                              self.explained_variance_ratio.tolist()})}
        return arrays, attrs

    @classmethod
    def from_arrays(cls, arrays: dict, attrs: dict) -> "EOFReduction":
        config = json.loads(attrs["reduction"])
        ratio = config.pop("explained_variance_ratio")
        config.pop("kind")
        return cls(arrays["eof"], arrays["eof_weights"], arrays["eof_climatology"], ratio,
                   config)

    def __repr__(self):
        return (f"<EOFReduction n_modes={self.n_modes} points={self.weights.size} "
                f"explained={self.explained_variance_ratio.sum():.3f} "
                f"anomalies={self.config.get('anomalies')!r}>")


def grid_weights(space, spec) -> np.ndarray:
    """The point weights ``w_p`` (kept points, stacked like ``space``'s features) for
    ``spec``: ``"coslat"``, None or an xr.DataArray over the grid dims."""
    parts = []
    for lay in space.layouts:
        tmpl = space._template[lay.name]
        if spec is None:
            w = xr.ones_like(tmpl, dtype=np.float64)
        elif isinstance(spec, xr.DataArray):
            w = spec.broadcast_like(tmpl)
        else:
            w = np.sqrt(np.clip(np.cos(np.deg2rad(_latitude(tmpl, lay.name))), 0, None)
                        ).broadcast_like(tmpl)
        parts.append(np.asarray(w.transpose(*lay.dims).values, dtype=np.float64).ravel())
    w = np.concatenate(parts)
    w = w if space.keep is None else w[space.keep]
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise DataError("EOF weights must be finite, >= 0 and not all 0 at the unmasked points")
    return w


def latitude(da):
    """The latitude coordinate (degrees) of ``da``'s grid: named one of ``LAT_NAMES``, or with
    ``standard_name`` latitude or units ``degrees_north``; None when there is none."""
    for c in da.coords:
        crd = da.coords[c]
        if str(c).lower() in LAT_NAMES or crd.attrs.get("standard_name") == "latitude" \
                or str(crd.attrs.get("units", "")).startswith("degrees_north"):
            return crd.astype(np.float64)
    return None


def _latitude(da, name):
    """:func:`latitude`, required."""
    lat = latitude(da)
    if lat is None:
        raise DataError(f"weights='coslat' needs a latitude coordinate on the grid of {name!r} "
                        f"(named one of {LAT_NAMES}, or with standard_name 'latitude'); it has "
                        f"{list(da.coords)}. Pass EOF(weights=None) or weights=<DataArray>")
    return lat
