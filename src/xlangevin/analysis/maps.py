"""Map figures of gridded diagnostics: data / model / difference panels side by side.

:func:`field_maps` draws a map of :func:`xlangevin.compare_fields` (``variance``, ``acf1``,
``skewness``) for every source and the differences from the data, with the scores in the
titles. With cartopy (the ``maps`` extra) the panels are ``PlateCarree`` map axes and carry
coastlines read from an offline shapefile, never downloaded: Natural Earth's
``ne_110m_coastline`` or GSHHS's coarse ``GSHHS_c_L1`` (what Debian's ``python-cartopy-data``
installs under ``/usr/share/cartopy/data``), looked up in ``$XLANGEVIN_COASTLINES`` (a file),
cartopy's ``pre_existing_data_dir`` and ``data_dir``, and ``/usr/share/cartopy/data``.
Fallback: without cartopy or without such a file the panels are plain longitude-latitude axes
and the mask (land) is outlined instead of coastlines.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import xarray as xr

from .plot import _new_figure, save_figure

__all__ = ["field_maps", "coastline_file"]

SHAPEFILES = ("shapefiles/natural_earth/physical/ne_110m_coastline.shp",
              "shapefiles/gshhs/c/GSHHS_c_L1.shp")
SYSTEM_DATA = "/usr/share/cartopy/data"


def coastline_file() -> Path | None:
    """An offline coastline shapefile (module docstring), or None."""
    env = os.environ.get("XLANGEVIN_COASTLINES")
    if env:
        return Path(env) if Path(env).is_file() else None
    roots = [SYSTEM_DATA]
    try:
        import cartopy

        roots = [cartopy.config.get("pre_existing_data_dir"),
                 cartopy.config.get("data_dir")] + roots
    except ImportError:
        return None
    for root in filter(None, roots):
        for rel in SHAPEFILES:
            path = Path(root) / rel
            if path.is_file():
                return path
    return None


def _row(subfig, n, skip, geo):
    """``n`` panels in one row of ``subfig`` (the first ``skip`` columns left empty)."""
    crs = None
    if geo:
        import cartopy.crs as ccrs

        crs = ccrs.PlateCarree()
    kw = {} if crs is None else {"projection": crs}
    return [subfig.add_subplot(1, n, i + 1, **kw) for i in range(skip, n)], crs


def _coastlines(ax, crs, path):
    import logging

    from cartopy.io.shapereader import Reader

    log = logging.getLogger("shapefile")          # pyshp warns about GSHHS's lake rings
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        geoms = list(Reader(str(path)).geometries())
    finally:
        log.setLevel(level)
    art = ax.add_geometries(geoms, crs=crs, facecolor="none", edgecolor="k", linewidth=0.6)
    art.set_gid("coastlines")


def _panel(ax, crs, da, title, cmap, vmin, vmax, coast, mask):
    kw = {"transform": crs} if crs is not None else {}
    lon, lat = da[da.dims[1]], da[da.dims[0]]
    mesh = ax.pcolormesh(lon, lat, da.values, cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="auto", **kw)
    if coast is not None:
        _coastlines(ax, crs, coast)
        ax.set_extent([float(lon.min()), float(lon.max()), float(lat.min()),
                       float(lat.max())], crs=crs)
    elif mask.any():
        ax.contour(lon, lat, mask.astype(float), levels=[0.5], colors="k", linewidths=0.6,
                   **kw)
    ax.set_title(title, fontsize=9)
    return mesh


def field_maps(report: xr.Dataset, key: str = "variance", sources=None, path=None,
               coastlines: bool = True, panel_width: float = 4.0, cmap: str = "viridis",
               dpi: int = 120):
    """Maps of ``report[key]`` (a :func:`~xlangevin.compare_fields` report): a row with one
    panel per source (``"data"``, ``"model"``, baselines; ``sources`` picks) on one color
    scale, and below each simulation its ``source - data`` panel (diverging scale).
    ``coastlines=False`` skips them (e.g. for a synthetic grid whose land is not the Earth's).
    Returns the matplotlib Figure (saved atomically to ``path`` if given)."""
    if key not in report or "source" not in report[key].dims or report[key].ndim != 3:
        raise ValueError(f"report has no map {key!r} over 'source'; maps: "
                         f"{[v for v in report.data_vars if report[v].ndim == 3]}")
    maps = report[key]
    sources = list(maps.source.values) if sources is None else list(sources)
    sims = [s for s in sources if s != "data"]
    geo = importlib.util.find_spec("cartopy") is not None
    coast = coastline_file() if (coastlines and geo) else None
    lat, lon = maps[maps.dims[1]], maps[maps.dims[2]]
    aspect = float(np.ptp(lat.values)) / max(float(np.ptp(lon.values)), 1e-9)
    height = max(1.4, panel_width * aspect) + 0.7
    fig = _new_figure((panel_width * len(sources) + 1.0, height * (2 if sims else 1)))
    top, bottom = fig.subfigures(2, 1) if sims else (fig, None)
    mask = maps.sel(source="data").isnull().values
    vmin, vmax = np.nanpercentile(maps.sel(source=sources).values, [1, 99])
    score = report.get(f"{key}_pattern_correlation")
    axes, crs = _row(top, len(sources), 0, geo)
    for ax, s in zip(axes, sources):
        title = s if s == "data" or score is None else \
            f"{s}  r = {float(score.sel(source=s)):.3f}"
        mesh = _panel(ax, crs, maps.sel(source=s), title, cmap, vmin, vmax, coast, mask)
    top.colorbar(mesh, ax=axes, shrink=0.8, label=key)
    if sims:
        diffs = [maps.sel(source=s) - maps.sel(source="data") for s in sims]
        lim = float(np.nanmax([np.nanmax(np.abs(d.values)) for d in diffs])) or 1.0
        axes, crs = _row(bottom, len(sources), len(sources) - len(sims), geo)
        for ax, s, d in zip(axes, sims, diffs):
            mesh = _panel(ax, crs, d, f"{s} - data", "RdBu_r", -lim, lim, coast, mask)
        bottom.colorbar(mesh, ax=axes, shrink=0.8, label=f"{key} difference")
    fig.suptitle(f"{key}: data, simulations and differences"
                 + ("" if coast is not None or not coastlines else " (no coastline data)"),
                 fontsize=10)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
