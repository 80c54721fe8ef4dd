"""Figures: data vs model comparisons (:func:`comparison`), model matrices (:func:`matrices`)
and response functions (:func:`responses`).

The functions build a :class:`matplotlib.figure.Figure` without touching pyplot's global state
unless pyplot is already in use (then the figure is registered with it, so ``plt.show()``
shows it). Nothing here needs a display: saving uses the Agg canvas. Figures are written
atomically (a temporary file in the target folder, then a rename) when ``path`` is given.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import xarray as xr

from ..io import atomic_target

__all__ = ["comparison", "matrices", "responses", "save_figure"]

DATA_STYLE = {"color": "k", "lw": 1.6, "ls": "-"}
MODEL_STYLE = {"color": "tab:red", "lw": 1.6, "ls": "--"}


def _new_figure(figsize):
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def save_figure(fig, path, dpi: int = 120, **kwargs):
    """Save ``fig`` to ``path`` atomically (temporary file in the same folder, then rename);
    the format follows the file extension (png by default). Like matplotlib's ``savefig`` it
    replaces an existing figure (never a read-only file)."""
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    with atomic_target(path, overwrite=True) as tmp:
        fig.savefig(tmp, format=ext, dpi=dpi, **kwargs)
    return path


def _pick_features(report, features, max_features):
    labels = [str(v) for v in report["label"].values]
    n = len(labels)
    if features is None:
        if n <= max_features:
            return list(range(n))
        return sorted(set(np.linspace(0, n - 1, max_features).round().astype(int).tolist()))
    out = []
    for f in ([features] if isinstance(features, (str, int, np.integer)) else features):
        if isinstance(f, str):
            if f not in labels:
                raise ValueError(f"unknown feature {f!r}; features are {labels[:10]}")
            out.append(labels.index(f))
        else:
            out.append(int(f) % n)
    return out


def _fmt(x):
    return "nan" if not np.isfinite(x) else (f"{x:.3g}" if abs(x) >= 1e-3 or x == 0
                                             else f"{x:.1e}")


def _trajectories(subfig, report, data, sim, feats, window):
    """Data vs one simulation member: line plots for few features, Hovmoller for many."""
    from ..data import FeatureSpace

    dim = report.attrs.get("sample_dim", "time")
    mdim = report.attrs.get("member_dim", "member")
    variables = report.attrs.get("variables", "").split(",")

    def arrays(obj):
        if isinstance(obj, xr.Dataset):
            obj = obj[[v for v in variables if v in obj.data_vars]]
        else:
            obj = obj.rename(variables[0]) if len(variables) == 1 else obj
        if mdim in obj.dims:
            obj = obj.isel({mdim: 0})
        n = min(obj.sizes[dim], max(window, report.sizes["feature"] + 1))
        obj = obj.isel({dim: slice(0, n)})
        space = FeatureSpace.fit(obj, dim=dim, sequence_dim=None, standardize=False)
        t = obj[dim].values if dim in obj.coords else np.arange(n)
        return t, np.asarray(space.transform(obj), dtype=np.float64)

    (td, Xd), (ts, Xs) = arrays(data), arrays(sim)
    units = report.attrs.get("lag_units", "")
    n_feat = Xd.shape[1]
    axes = subfig.subplots(1, 2, sharey=True)
    for ax, t in ((axes[0], td), (axes[1], ts)):
        if np.issubdtype(np.asarray(t).dtype, np.datetime64) or np.asarray(t).dtype == object:
            import matplotlib.dates as mdates

            loc = mdates.AutoDateLocator(minticks=3, maxticks=6)
            ax.xaxis.set_major_locator(loc)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    xlabel = {"samples": "time step", "": dim, "days": dim}.get(units, f"{dim} [{units}]")
    xlabel = dim if units.startswith("steps of") else xlabel
    if n_feat > 4:  # Hovmoller: time x feature
        lo = min(Xd.min(), Xs.min())
        hi = max(Xd.max(), Xs.max())
        for ax, X, t, title in ((axes[0], Xd, td, "data"), (axes[1], Xs, ts, "model (member 0)")):
            m = ax.pcolormesh(t, np.arange(n_feat), X.T, shading="auto", cmap="RdBu_r",
                              vmin=lo, vmax=hi, rasterized=True)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
        axes[0].set_ylabel("feature index")
        subfig.colorbar(m, ax=axes, shrink=0.9, label="value")
    else:
        labels = [str(v) for v in report["label"].values]
        colors = ["k", "tab:blue", "tab:green", "tab:orange"]
        for ax, X, t, title in ((axes[0], Xd, td, "data"), (axes[1], Xs, ts, "model (member 0)")):
            for j in feats:
                ax.plot(t, X[:, j], lw=0.8, color=colors[feats.index(j) % 4], label=labels[j])
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.margins(x=0)
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                       frameon=False)


def _pdf_row(sf, report, feats, labels):
    """Marginal PDFs of data and model, one panel per feature, titled with the distances."""
    axes = np.atleast_1d(sf.subplots(1, max(len(feats), 1)))
    for ax, j in zip(axes, feats):
        x = report["bin_center"].values[j]
        ax.plot(x, report["pdf_data"].values[j], label="data", **DATA_STYLE)
        ax.plot(x, report["pdf_sim"].values[j], label="model", **MODEL_STYLE)
        ax.set_title(f"{labels[j]}\nKL {_fmt(report.kl.values[j])}, "
                     f"H {_fmt(report.hellinger.values[j])}, "
                     f"W1 {_fmt(report.wasserstein.values[j])}", fontsize="medium")
        ax.set_xlabel(labels[j])
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("PDF")
    axes[0].legend(fontsize="small", frameon=False)


def _acf_row(sf, report, feats):
    """ACFs of data and model (with the members' range), one panel per feature."""
    axes = np.atleast_1d(sf.subplots(1, max(len(feats), 1), sharey=True))
    lag = report["lag"].values
    lag_units = report.attrs.get("lag_units", "")
    for ax, j in zip(axes, feats):
        ax.axhline(0, color="0.7", lw=0.8)
        if report.sizes.get(report.attrs.get("member_dim", "member"), 1) > 1:
            m = report["acf_sim_member"].values[:, j]
            ax.fill_between(lag, np.nanmin(m, 0), np.nanmax(m, 0), color="tab:red",
                            alpha=0.15, lw=0, label="model members")
        ax.plot(lag, report["acf_data"].values[j], label="data", **DATA_STYLE)
        ax.plot(lag, report["acf_sim"].values[j], label="model", **MODEL_STYLE)
        ax.set_title(f"ACF RMSE {_fmt(report.acf_rmse.values[j])}", fontsize="medium")
        ax.set_xlabel({"samples": "lag (steps)", "": "lag"}.get(
            lag_units, f"lag [{lag_units}]"))
        ax.set_xlim(lag[0], lag[-1])
    axes[0].set_ylabel("autocorrelation")
    axes[0].legend(fontsize="small", frameon=False)


def _pair_row(sf, report, n_pairs):
    """Bivariate PDFs, data and model side by side on a shared color scale per pair."""
    axes = np.atleast_1d(sf.subplots(1, 2 * n_pairs))
    for i in range(n_pairs):
        cx = report["center_x"].values[i]
        cy = report["center_y"].values[i]
        pd_, ps_ = report["pdf2_data"].values[i], report["pdf2_sim"].values[i]
        vmax = max(pd_.max(), ps_.max())
        lx, ly = str(report["label_x"].values[i]), str(report["label_y"].values[i])
        for k, (P, who) in enumerate(((pd_, "data"), (ps_, "model"))):
            ax = axes[2 * i + k]
            m = ax.pcolormesh(cx, cy, P.T, shading="auto", cmap="viridis", vmin=0,
                              vmax=vmax, rasterized=True)
            title = who if k == 0 else (f"{who}: KL {_fmt(report.kl_2d.values[i])}, "
                                       f"H {_fmt(report.hellinger_2d.values[i])}")
            ax.set_title(title, fontsize="medium")
            ax.set_xlabel(lx)
            ax.set_ylabel(ly)
        sf.colorbar(m, ax=axes[2 * i: 2 * i + 2], shrink=0.85, label="PDF")


def comparison(report: xr.Dataset, data=None, sim=None, path=None, features=None,
               max_features: int = 4, window: int | None = None, dpi: int = 120):
    """Draw a :func:`xlangevin.compare` report in the style of the papers.

    Rows: (if ``data`` and ``sim`` are given) a stretch of the data and of simulation member 0,
    as lines for up to four features or as a time-feature (Hovmoller) map for more; the
    marginal PDFs (data solid, model dashed) with their KL / Hellinger / W1 distances; the ACFs
    with their RMSE; up to three bivariate PDFs, data and model side by side on shared color
    scales. The title holds the means of the distances over all features.

    ``features`` picks the features of the 1-D panels (indices or labels; default all, or
    ``max_features`` evenly spaced ones). ``window`` is the number of samples in the trajectory
    panels (default 20 times the largest ACF lag, at most 2000). Saves to ``path`` atomically
    when given; returns the figure.
    """
    if not isinstance(report, xr.Dataset) or report.attrs.get("xlangevin_object") != "comparison":
        raise TypeError("report must be the xr.Dataset returned by xlangevin.compare")
    if (data is None) != (sim is None):
        raise ValueError("pass both data and sim for the trajectory panels, or neither")
    feats = _pick_features(report, features, max_features)
    labels = [str(v) for v in report["label"].values]
    n_pairs = min(3, report.sizes.get("pair", 0))
    show_traj = data is not None
    n_cols = max(len(feats), 1)
    rows = ([("traj", 2.6)] if show_traj else []) + [("pdf", 2.7), ("acf", 2.5)] + \
        ([("pdf2", 2.9)] if n_pairs else [])
    width = max(3.2 * n_cols, 3.0 * 2 * n_pairs if n_pairs else 0, 10.0)
    fig = _new_figure((width, sum(h for _, h in rows) + 0.6))
    subfigs = fig.subfigures(len(rows), 1, height_ratios=[h for _, h in rows])
    subfigs = np.atleast_1d(subfigs)
    for (kind, _), sf in zip(rows, subfigs):
        if kind == "traj":
            n_lag = report.sizes["lag"]
            win = int(window) if window is not None else int(min(2000, max(200, 20 * n_lag)))
            _trajectories(sf, report, data, sim, feats, win)
        elif kind == "pdf":
            _pdf_row(sf, report, feats, labels)
        elif kind == "acf":
            _acf_row(sf, report, feats)
        else:
            _pair_row(sf, report, n_pairs)
    a = report.attrs
    fig.suptitle(f"data vs model ({a['n_members_sim']} member{'s' * (a['n_members_sim'] > 1)})"
                 f"\nmean over {report.sizes['feature']} features: "
                 f"KL {_fmt(a['kl_mean'])}, Hellinger {_fmt(a['hellinger_mean'])}, "
                 f"W1/std {_fmt(a['wasserstein_std_mean'])}, ACF RMSE {_fmt(a['acf_rmse_mean'])}",
                 fontsize="large")
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def _tick_labels(M, axis_dim, n):
    if isinstance(M, xr.DataArray):
        for name in (f"label_{axis_dim}", "label"):
            if name in M.coords and M[name].dims == (axis_dim,):
                return [str(v) for v in M[name].values]
        if axis_dim in M.coords:
            return [str(v) for v in M[axis_dim].values]
    return [str(i) for i in range(n)]


def matrices(mats: dict, path=None, labels=None, ncols: int | None = None, dpi: int = 120):
    """Heatmaps of model matrices (e.g. ``{"Phi": lang.Phi, "Phi_S": ..., "Phi_A": ...,
    "Sigma": ..., "V": ...}``), each on a symmetric diverging color scale with its own colorbar.

    Values are 2-D arrays or DataArrays; DataArray ``label``-style coords (or dim coords) label
    the rows and columns, else ``labels`` (a list) or indices. Large matrices show every k-th
    label only. Saves to ``path`` atomically when given; returns the figure.
    """
    if not isinstance(mats, dict) or not mats:
        raise ValueError("mats must be a non-empty dict of name -> 2-D array")
    items = []
    for name, M in mats.items():
        arr = np.asarray(M.values if isinstance(M, xr.DataArray) else M, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"matrix {name!r} has shape {arr.shape}; expected 2-D")
        if isinstance(M, xr.DataArray):
            rl, cl = _tick_labels(M, M.dims[0], arr.shape[0]), _tick_labels(M, M.dims[1],
                                                                              arr.shape[1])
        else:
            rl = list(labels) if labels is not None and len(labels) == arr.shape[0] else \
                [str(i) for i in range(arr.shape[0])]
            cl = list(labels) if labels is not None and len(labels) == arr.shape[1] else \
                [str(i) for i in range(arr.shape[1])]
        items.append((str(name), arr, rl, cl))
    n = len(items)
    ncols = ncols or min(n, 3)
    nrows = int(np.ceil(n / ncols))
    big = max(max(a.shape) for _, a, _, _ in items)
    cell = 3.6 if big <= 12 else 4.2
    fig = _new_figure((cell * ncols + 0.8, cell * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (name, arr, rl, cl) in zip(axes, items):
        vmax = float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0
        vmax = vmax if vmax > 0 else 1.0
        m = ax.imshow(arr, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest",
                      aspect="equal")
        ax.set_title(name)
        for setter, labs, size in ((ax.set_yticks, rl, arr.shape[0]),
                                   (ax.set_xticks, cl, arr.shape[1])):
            k = max(1, int(np.ceil(size / 12)))
            idx = np.arange(0, size, k)
            setter(idx, [labs[i] for i in idx], fontsize="small")
        if max(len(c) for c in cl) > 3:
            ax.tick_params(axis="x", labelrotation=60)
        fig.colorbar(m, ax=ax, shrink=0.8)
    for ax in axes[n:]:
        ax.set_visible(False)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def responses(results: dict, forcing=0, observables=None, path=None, dpi: int = 120):
    """Response functions side by side: ``results`` maps a label to a Dataset of
    :func:`xlangevin.response` or :func:`xlangevin.perturbation_response`; one panel per
    observable (default all of the first), lines per result and ``+-2`` standard-error bands
    where the Dataset has ``response_stderr``, for the forcing ``forcing`` (index or label).
    Saves to ``path`` atomically when given; returns the figure."""
    if not results:
        raise ValueError("give at least one response Dataset")
    first = next(iter(results.values()))
    names = list(first["observable"].values) if observables is None else list(observables)
    fig = _new_figure((3.2 * len(names), 3.0))
    axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False)[0])
    pick = {"forcing": forcing} if isinstance(forcing, str) else {"forcing": int(forcing)}
    for ax, name in zip(axes, names):
        for label, ds in results.items():
            sel = (ds.sel(observable=name).sel(pick) if isinstance(forcing, str)
                   else ds.sel(observable=name).isel(pick))
            line = ax.plot(ds["lag"], sel["response"], lw=1.5, label=label)[0]
            if "response_stderr" in ds:
                band = 2 * sel["response_stderr"].values
                ax.fill_between(ds["lag"], sel["response"] - band, sel["response"] + band,
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_title(str(name), fontsize="medium")
        ax.set_xlabel(f"lag ({first['lag'].attrs.get('units', '')})")
    axes[0].set_ylabel("response R(t)")
    axes[0].legend(fontsize="small")
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
