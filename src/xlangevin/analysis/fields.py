r"""Spatial diagnostics of gridded fields: :func:`compare_fields` (``xlangevin.compare_fields``).

Data and one or more simulations of a field ``x(t, lat, lon)`` (land NaN) are compared by

* gridpoint maps of the variance, the lag-1 autocorrelation and the skewness, each with its
  area-weighted pattern correlation and RMSE against the data's map (weights ``cos lat``);
  the variance RMSE is relative to the area mean of the data's variance;
* the EOF spectrum: the variance of each of the data's PCs, and of the simulation projected on
  the same EOFs, with each PC's skewness and the KL divergence of its marginal PDF from the
  data's (:func:`xlangevin.analysis.kl_divergence`, histograms on common bins);
* the area-weighted mean series: its PDF and autocorrelation function.

Pattern correlation ``r = sum w (a - <a>)(b - <b>) / sqrt(sum w (a - <a>)^2 sum w (b - <b>)^2)``
and ``RMSE = sqrt(sum w (b - a)^2 / sum w)`` over the unmasked points (the usual scores of
climate-model evaluation, e.g. Taylor, "Summarizing multiple aspects of model performance in a
single diagram", JGR 2001).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import EOF, DataError, FeatureSpace
from ..data.eof import latitude
from .distances import kl_divergence
from .stats import acf

__all__ = ["compare_fields", "pattern_scores"]



def _field(obj, variable, what):
    if isinstance(obj, xr.Dataset):
        names = [variable] if variable else [v for v in obj.data_vars if obj[v].ndim >= 3]
        if len(names) != 1:
            raise DataError(f"{what}: name the field with variable=...; candidates {names}")
        obj = obj[names[0]]
    if not isinstance(obj, xr.DataArray):
        raise DataError(f"{what} must be an xarray DataArray or Dataset, got "
                        f"{type(obj).__name__}")
    return obj


def _area_weights(da):
    """``cos(lat)`` on the grid of ``da`` (ones without a latitude coordinate)."""
    lat = latitude(da)
    if lat is None:
        return xr.ones_like(da.isel({d: 0 for d in da.dims if d not in _grid_dims(da)}),
                            dtype=np.float64)
    return np.cos(np.deg2rad(lat)).clip(0).broadcast_like(
        da.isel({d: 0 for d in da.dims if d not in _grid_dims(da)}, drop=True))


def _grid_dims(da):
    return [d for d in da.dims if d not in ("time", "member")]


def pattern_scores(ref, other, weights):
    """``(pattern correlation, RMSE)`` of map ``other`` against ``ref`` with area
    ``weights`` over the points finite in both (module docstring)."""
    a, b, w = (np.asarray(v, dtype=np.float64).ravel() for v in (ref, other, weights))
    ok = np.isfinite(a) & np.isfinite(b) & (w > 0)
    a, b, w = a[ok], b[ok], w[ok] / w[ok].sum()
    da, db = a - w @ a, b - w @ b
    r = (w @ (da * db)) / np.sqrt((w @ da**2) * (w @ db**2))
    return float(r), float(np.sqrt(w @ (b - a) ** 2))


def _maps(x, dim, member_dim):
    """Variance, lag-1 autocorrelation and skewness of every gridpoint (pooled members)."""
    x = x if member_dim in x.dims else x.expand_dims(member_dim)
    a = x - x.mean((member_dim, dim))
    var = (a**2).mean((member_dim, dim))
    lagged = (a.isel({dim: slice(1, None)}).data * a.isel({dim: slice(None, -1)}).data)
    acf1 = xr.DataArray(np.asarray(lagged).mean(axis=(0, 1)), dims=var.dims,
                        coords=var.coords) / var
    skew = (a**3).mean((member_dim, dim)) / var**1.5
    return var, acf1, skew


def _step(da, dim):
    """The first step of the sample coordinate in seconds (or its units), or None."""
    if dim not in da.coords or da.sizes[dim] < 2:
        return None
    step = da[dim].values[1] - da[dim].values[0]
    if isinstance(step, np.timedelta64):
        return float(step / np.timedelta64(1, "s"))
    return float(step.total_seconds()) if hasattr(step, "total_seconds") else float(step)


def _check_sampling(data, sims, dim):
    ref = _step(data, dim)
    for name, sim in sims.items():
        step = _step(sim, dim)
        if None not in (ref, step) and not np.isclose(step, ref, rtol=1e-6):
            raise DataError(f"{name} is sampled every {step:g}, the data every {ref:g} "
                            f"(along {dim!r}): generate with save_every * dt equal to the "
                            "data's spacing (model.space.dt)")


def _pc_part(space, data, sims, bins):
    """EOF spectrum, PC skewness and marginal KL of each source (data first)."""
    pcs = {"data": space.pcs(data)}
    pcs.update({k: space.pcs(v) for k, v in sims.items()})
    flat = {k: v.values.reshape(-1, v.sizes["mode"]) for k, v in pcs.items()}
    k_modes = flat["data"].shape[1]
    var = np.stack([f.var(axis=0) for f in flat.values()])
    mu = {k: f - f.mean(axis=0) for k, f in flat.items()}
    skew = np.stack([(m**3).mean(0) / (m**2).mean(0) ** 1.5 for m in mu.values()])
    kl = np.full((len(flat), k_modes), np.nan)
    for j in range(k_modes):
        lo = min(f[:, j].min() for f in flat.values())
        hi = max(f[:, j].max() for f in flat.values())
        edges = np.linspace(lo, hi, bins + 1)
        p = np.histogram(flat["data"][:, j], edges)[0]
        for i, f in enumerate(flat.values()):
            kl[i, j] = kl_divergence(p, np.histogram(f[:, j], edges)[0])
    mode = pcs["data"]["mode"].values
    return {"pc_variance": (("source", "mode"), var), "pc_skewness": (("source", "mode"), skew),
            "pc_kl": (("source", "mode"), kl)}, mode


def _area_mean_part(fields, w, dim, member_dim, max_lag, bins):
    """PDF and ACF of the area-weighted mean series of each source."""
    series = {}
    for k, x in fields.items():
        m = x.weighted(w.fillna(0) * x.isel({d: 0 for d in x.dims if d not in w.dims},
                                            drop=True).notnull()).mean(list(w.dims))
        series[k] = m if member_dim in m.dims else m.expand_dims(member_dim)
    lo = min(float(s.min()) for s in series.values())
    hi = max(float(s.max()) for s in series.values())
    edges = np.linspace(lo, hi, bins + 1)
    pdf = np.stack([np.histogram(s.values.ravel(), edges, density=True)[0]
                    for s in series.values()])
    acfs = np.stack([np.mean([acf(row, max_lag) for row in s.transpose(member_dim, dim).values],
                             axis=0) for s in series.values()])
    return {"area_mean_pdf": (("source", "bin"), pdf),
            "area_mean_acf": (("source", "lag"), acfs)}, 0.5 * (edges[1:] + edges[:-1])


def compare_fields(data, sim, baselines: dict | None = None, space=None, n_modes: int = 10,
                   dim: str = "time", member_dim: str = "member", variable=None,
                   max_lag: int = 30, bins: int = 50) -> xr.Dataset:
    """Spatial diagnostics of simulated fields against the data's (module docstring).

    Parameters
    ----------
    data : the field, ``(time, lat, lon)`` (a DataArray or a one-field Dataset), land NaN.
    sim : the model's field, ``([member,] time, lat, lon)``, sampled like the data (e.g.
        ``model.generate(..., save_every=round(model.space.dt / dt))``).
    baselines : ``{name: field}`` of other simulations (e.g. a LIM on the same PCs).
    space : a FeatureSpace with an EOF reduction whose PCs are compared (e.g. ``model.space``);
        default: ``n_modes`` EOFs of the data (``EOF(n_modes)``, area-weighted).
    max_lag : lags (samples) of the area-mean ACF; ``bins``: histogram bins.

    Returns
    -------
    xr.Dataset over ``source`` (``"data"``, ``"model"``, the baselines): maps ``variance``,
    ``acf1``, ``skewness`` (``source, lat, lon``), their scores against the data
    (``variance_pattern_correlation``, ``variance_rmse`` (relative), ``acf1_...``,
    ``skewness_...`` over ``source``), the EOF spectrum ``pc_variance``, ``pc_skewness``,
    ``pc_kl`` (``source, mode``), the area-mean ``area_mean_pdf`` (``source, bin``) and
    ``area_mean_acf`` (``source, lag``).
    """
    data = _field(data, variable, "data")
    grid = _grid_dims(data)
    data = data.transpose(dim, *grid)
    sims = {"model": _field(sim, variable, "sim")}
    sims.update({str(k): _field(v, variable, f"baseline {k!r}")
                 for k, v in (baselines or {}).items()})
    for name, s in sims.items():
        if set(_grid_dims(s)) != set(grid) or any(s.sizes[d] != data.sizes[d] for d in grid):
            raise DataError(f"{name} has grid {dict((d, s.sizes[d]) for d in _grid_dims(s))}; "
                            f"the data {dict((d, data.sizes[d]) for d in grid)}")
        sims[name] = s.transpose(*[member_dim] * (member_dim in s.dims), dim, *grid)
    _check_sampling(data, sims, dim)
    if space is None or getattr(space, "reduction", None) is None:
        space = FeatureSpace.fit(data, dim=dim, reduce=EOF(n_modes=n_modes))
    fields = {"data": data, **sims}
    sources = list(fields)
    w = _area_weights(data)
    out = {}
    for name, (var, acf1, skew) in ((k, _maps(v, dim, member_dim)) for k, v in fields.items()):
        for key, m in (("variance", var), ("acf1", acf1), ("skewness", skew)):
            out.setdefault(key, []).append(m.drop_vars([c for c in m.coords
                                                        if c not in m.dims]))
    ds = xr.Dataset({k: xr.concat(v, dim="source") for k, v in out.items()})
    ds = ds.assign_coords(source=sources)
    ref_scale = float((ds.variance.sel(source="data") * w).sum() / w.where(
        ds.variance.sel(source="data").notnull()).sum())
    for key in ("variance", "acf1", "skewness"):
        scores = np.array([pattern_scores(ds[key].sel(source="data"), ds[key].sel(source=s), w)
                           for s in sources])
        scale = ref_scale if key == "variance" else 1.0
        ds[f"{key}_pattern_correlation"] = ("source", scores[:, 0])
        ds[f"{key}_rmse"] = ("source", scores[:, 1] / scale)
    pc_vars, mode = _pc_part(space, data, sims, bins)
    am_vars, centers = _area_mean_part(fields, w, dim, member_dim, max_lag, bins)
    ds = ds.assign({**pc_vars, **am_vars}).assign_coords(mode=mode, bin=centers,
                                                         lag=np.arange(max_lag + 1))
    ds["variance_rmse"].attrs["long_name"] = "area-weighted RMSE / area-mean data variance"
    ds.attrs = {"title": "spatial diagnostics of gridded fields (xlangevin.compare_fields)",
                "units": str(data.attrs.get("units", "")), "n_modes": int(mode.size)}
    return ds
