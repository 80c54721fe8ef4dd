"""Data vs simulation: :func:`compare` (``xlangevin.compare``) reports marginal and bivariate
PDFs, ACFs and distances of a simulation against data, as an ``xr.Dataset`` (its variables are
listed in :data:`REPORT_VARIABLES`; drawn by :func:`xlangevin.analysis.plot.comparison`).

The report is built in steps: :func:`_feature_spaces` (the same features on both sides),
:func:`_acf_part` (ACFs at a common lag step), :func:`_marginal_part` (1-D PDFs, distances,
moments), :func:`_pair_part` (2-D PDFs and distances); each returns its coordinates and data
variables, and :func:`_summary` the attributes.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from .._version import __version__
from ..data import DataError, FeatureSpace
from .distances import KL_FLOOR, acf_rmse, hellinger, kl_divergence, wasserstein1
from .stats import _sequence_acf, integrated_time_from_acf

__all__ = ["compare", "format_report", "REPORT_VARIABLES"]

REPORT_VARIABLES = ("pdf_data", "pdf_sim", "pdf2_data", "pdf2_sim", "acf_data", "acf_sim",
                    "acf_sim_member", "kl", "hellinger", "wasserstein", "wasserstein_std",
                    "acf_rmse", "kl_2d", "hellinger_2d", "mean_data", "mean_sim", "std_data",
                    "std_sim")

_F, _FB, _FL = ("feature",), ("feature", "bin"), ("feature", "lag")


class _Series(NamedTuple):
    """One side of the comparison: its feature space, samples ``X`` (n_samples, d) with the
    members one after the other, the sequence bounds in ``X`` and the samples per member."""
    space: FeatureSpace
    X: np.ndarray
    bounds: np.ndarray
    n_t: int


def _series(space, obj, dim) -> _Series:
    return _Series(space, np.asarray(space.transform(obj), dtype=np.float64),
                   space.sequence_bounds(obj), obj.sizes[dim])


def _longest(bounds):
    return int(np.max(np.diff(bounds))) if len(bounds) > 1 else 0


def _step_info(space):
    """(dt, units, has_coord) of the sample coordinate, dt in the units of ``lag``."""
    kind = space.time["kind"]
    if kind == "index":
        return 1.0, "samples", False
    if kind in ("datetime", "cftime"):
        if space.time.get("freq"):
            return 1.0, f"steps of {space.time['freq']}", True
        return space.dt, "days", True
    return space.dt, space.time.get("units", "") or "", True


def _strides(space_d, space_s):
    """Common lag step of data and sim: (dt, units, stride_data, stride_sim, note)."""
    dt_d, u_d, has_d = _step_info(space_d)
    dt_s, u_s, has_s = _step_info(space_s)
    if not has_d and not has_s:
        return 1.0, "samples", 1, 1, ""
    if not (has_d and has_s):
        dt, units = (dt_d, u_d) if has_d else (dt_s, u_s)
        which = "sim" if has_d else "data"
        return dt, units, 1, 1, (f"the {which} has no sample coordinate; assumed the same step "
                                 f"({dt:g} {units}) as the other")
    if u_d != u_s and not ("" in (u_d, u_s)):
        raise DataError(f"data and sim time steps are in different units ({u_d!r} vs {u_s!r}); "
                        "give both the same time coordinate convention")
    ratio = dt_s / dt_d
    for r, sd, ss in ((ratio, None, 1), (1.0 / ratio, 1, None)):
        w = np.rint(r)
        if w >= 1 and abs(r - w) <= 1e-6 * w:
            w = int(w)
            return (max(dt_d, dt_s), u_d or u_s, w if sd is None else 1, w if ss is None else 1,
                    "")
    raise DataError(f"the time steps of data ({dt_d:g}) and sim ({dt_s:g}) are not whole "
                    "multiples of each other, so their ACFs cannot be compared lag by lag; "
                    "subsample one of them (e.g. sim.isel(time=slice(None, None, k)))")


def _feature_index(f, labels):
    if isinstance(f, str):
        if f not in labels:
            raise ValueError(f"unknown feature {f!r}; features are {labels[:10]}"
                             f"{' ...' if len(labels) > 10 else ''}")
        return labels.index(f)
    i = int(f)
    if not -len(labels) <= i < len(labels):
        raise ValueError(f"feature index {f} out of range for {len(labels)} features")
    return i % len(labels)


def _grid(a, b, bins):
    lo = min(float(a.min()), float(b.min()))
    hi = max(float(a.max()), float(b.max()))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _align_inputs(data, sim, variables):
    """Make sim a Dataset with the same variable names as data."""
    if not isinstance(data, (xr.Dataset, xr.DataArray)):
        raise DataError(f"data must be an xarray Dataset or DataArray, got {type(data).__name__}")
    if not isinstance(sim, (xr.Dataset, xr.DataArray)):
        raise DataError(f"sim must be an xarray Dataset or DataArray, got {type(sim).__name__}")
    if isinstance(data, xr.DataArray):
        name = data.name if data.name is not None else "data"
        if variables is not None:
            raise DataError("`variables` is only for Dataset input")
        data = data.to_dataset(name=name)
        variables = [name]
        if isinstance(sim, xr.DataArray):
            sim = sim.to_dataset(name=name)
        elif name not in sim.data_vars:
            if len(sim.data_vars) == 1:
                sim = sim.rename({list(sim.data_vars)[0]: name})
            else:
                raise DataError(f"data is the DataArray {name!r} but sim has variables "
                                f"{list(sim.data_vars)}; select the matching one")
    elif isinstance(sim, xr.DataArray):
        name = sim.name
        if name is None or name not in data.data_vars:
            raise DataError(f"sim is a DataArray named {name!r}, which is not a variable of "
                            f"data ({list(data.data_vars)}); name it or pass a Dataset")
        sim = sim.to_dataset(name=name)
        variables = [name] if variables is None else variables
    return data, sim, variables


def _feature_spaces(data, sim, dim, variables, member_dim):
    """Fit unstandardized feature spaces to data and sim; check that sim has the variables,
    feature dims and feature coordinates of data."""
    try:
        space_d = FeatureSpace.fit(data, dim=dim, variables=variables, sequence_dim=member_dim,
                                   standardize=False)
    except DataError as e:
        raise DataError(f"data: {e}") from None
    missing = [v for v in space_d.variables if v not in sim.data_vars]
    if missing:
        raise DataError(f"sim lacks the variable(s) {missing} of data; sim has "
                        f"{list(sim.data_vars)}")
    try:
        space_s = FeatureSpace.fit(sim, dim=dim, variables=space_d.variables,
                                   sequence_dim=member_dim, standardize=False)
    except DataError as e:
        raise DataError(f"sim: {e}") from None
    for ld, ls in zip(space_d.layouts, space_s.layouts):
        if (ld.dims, ld.shape) != (ls.dims, ls.shape):
            raise DataError(f"variable {ld.name!r} has feature dims {dict(zip(ld.dims, ld.shape))}"
                            f" in data but {dict(zip(ls.dims, ls.shape))} in sim; compare the "
                            "same features")
    labels = space_d.feature_labels()
    labels_s = space_s.feature_labels()
    if labels != labels_s:
        i = next(k for k, (a, b) in enumerate(zip(labels, labels_s)) if a != b)
        raise DataError(f"data and sim have different feature coordinates: feature {i} is "
                        f"{labels[i]!r} in data but {labels_s[i]!r} in sim")
    return space_d, space_s


def _requested_lags(max_lag, n_lags, dt, units, avail):
    """The lag steps asked for by ``max_lag`` (time units) or ``n_lags``, at most ``avail``
    (the longest common sequence); None when neither is given."""
    if max_lag is not None:
        if isinstance(max_lag, (np.timedelta64, pd.Timedelta)) or hasattr(max_lag, "days"):
            max_lag = pd.Timedelta(max_lag) / pd.Timedelta(1, "D")
        k = float(max_lag) / dt
        if not k >= 1:
            raise ValueError(f"max_lag={max_lag} is shorter than one time step ({dt:g} {units})")
        n_lags = int(np.floor(k + 1e-9))
    if n_lags is None:
        return None
    n_lags = int(n_lags)
    if n_lags < 1:
        raise ValueError(f"n_lags must be >= 1, got {n_lags}")
    if n_lags > avail:
        raise DataError(f"{n_lags} lag steps asked for, but the longest common sequence "
                        f"allows {avail} (at {dt:g} {units} per step)")
    return n_lags


def _default_lags(data: _Series, avail, stride):
    """Five integrated autocorrelation times (:func:`integrated_time_from_acf`, in lag steps)
    of the slowest feature of the data's ACF pooled over members, at least 10 and at most
    ``min(avail // 2, 5000)``: (n_lags, the data's ACF per member up to n_lags)."""
    cap = max(1, min(avail // 2, 5000))
    acf_d = _sequence_acf(data.X, data.bounds, data.n_t, cap, stride)
    r = np.nanmean(acf_d, axis=0) if acf_d.shape[0] > 1 else acf_d[0]
    n_lags = int(min(cap, max(10, np.ceil(5 * integrated_time_from_acf(r).max()))))
    return n_lags, acf_d[:, : n_lags + 1]


def _member_coord(sim, member_dim):
    if member_dim not in sim.dims:
        return np.arange(1)
    return sim[member_dim].values if member_dim in sim.coords else np.arange(sim.sizes[member_dim])


def _acf_part(data: _Series, sim: _Series, max_lag, n_lags, members, member_dim):
    """ACFs per member of data and sim at their common lag step, their member means and RMSE:
    (coords, data variables, attrs)."""
    dt, units, sd, ss, note = _strides(data.space, sim.space)
    avail = min((_longest(data.bounds) - 1) // sd, (_longest(sim.bounds) - 1) // ss)
    if avail < 1:
        raise DataError("the sequences are too short for an ACF at the common time step")
    n_lags = _requested_lags(max_lag, n_lags, dt, units, avail)
    if n_lags is None:
        n_lags, acf_d = _default_lags(data, avail, sd)
    else:
        acf_d = _sequence_acf(data.X, data.bounds, data.n_t, n_lags, sd)
    acf_s = _sequence_acf(sim.X, sim.bounds, sim.n_t, n_lags, ss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acf_data = np.nanmean(acf_d, axis=0)
        acf_sim = np.nanmean(acf_s, axis=0)
    coords = {"lag": ("lag", np.arange(n_lags + 1) * dt, {"long_name": "lag", "units": units}),
              member_dim: (member_dim, members)}
    dv = {
        "acf_data": (_FL, acf_data.T, {"long_name": "autocorrelation of the data"}),
        "acf_sim": (_FL, acf_sim.T, {"long_name": "autocorrelation of the simulation, "
                                                 "mean over members"}),
        "acf_sim_member": ((member_dim,) + _FL, np.transpose(acf_s, (0, 2, 1)),
                           {"long_name": "autocorrelation of each simulation member"}),
        "acf_rmse": (_F, acf_rmse(acf_data.T, acf_sim.T, axis=-1),
                     {"long_name": "RMSE of the ACFs over the compared lags"}),
    }
    attrs = {"n_members_sim": int(acf_s.shape[0]), "lag_step": dt, "lag_units": units}
    return coords, dv, attrs | ({"note": note} if note else {})


def _counts(X, edges):
    return np.stack([np.histogram(X[:, j], bins=edges[j])[0] for j in range(X.shape[1])]
                    ).astype(float)


def _marginal_part(Xd, Xs, edges, kl_floor):
    """Marginal histograms on the grids ``edges`` (feature, bins + 1), their densities, the
    distances and the moments: (coords, data variables)."""
    cnt_d, cnt_s = _counts(Xd, edges), _counts(Xs, edges)
    width = edges[:, 1] - edges[:, 0]
    w1 = np.array([wasserstein1(Xd[:, j], Xs[:, j]) for j in range(Xd.shape[1])])
    std_d = Xd.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w1_std = np.where(std_d > 0, w1 / std_d, np.nan)
    coords = {"bin": ("bin", np.arange(edges.shape[1] - 1)),
              "bin_center": (_FB, 0.5 * (edges[:, 1:] + edges[:, :-1])),
              "bin_width": ("feature", width)}
    dv = {
        "pdf_data": (_FB, cnt_d / (cnt_d.sum(1, keepdims=True) * width[:, None]),
                     {"long_name": "marginal PDF of the data"}),
        "pdf_sim": (_FB, cnt_s / (cnt_s.sum(1, keepdims=True) * width[:, None]),
                    {"long_name": "marginal PDF of the simulation"}),
        "kl": (_F, kl_divergence(cnt_d, cnt_s, floor=kl_floor, axis=1),
               {"long_name": "KL(data || sim) of the marginal histograms", "floor": kl_floor}),
        "hellinger": (_F, hellinger(cnt_d, cnt_s, axis=1),
                      {"long_name": "Hellinger distance of the marginal histograms"}),
        "wasserstein": (_F, w1, {"long_name": "Wasserstein-1 distance of the samples",
                                "units": "data units"}),
        "wasserstein_std": (_F, w1_std, {"long_name": "Wasserstein-1 / std of the data"}),
        "mean_data": (_F, Xd.mean(0)), "mean_sim": (_F, Xs.mean(0)),
        "std_data": (_F, std_d), "std_sim": (_F, Xs.std(0)),
    }
    return coords, dv


def _pairs(pairs, labels):
    """Feature pairs as index tuples; default the consecutive pairs (0, 1), (1, 2), (2, 3)."""
    if pairs is None:
        pairs = [(j, j + 1) for j in range(min(3, len(labels) - 1))]
    pairs = [(_feature_index(a, labels), _feature_index(b, labels)) for a, b in pairs]
    for a, b in pairs:
        if a == b:
            raise ValueError(f"pair ({a}, {b}) repeats a feature")
    return pairs


def _pair_part(Xd, Xs, edges, pairs, labels, bins_2d, kl_floor):
    """Bivariate histograms of the feature ``pairs`` on ``bins_2d`` x ``bins_2d`` grids over the
    marginal ranges, their densities and distances: (coords, data variables)."""
    n_p = len(pairs)
    p2d = np.zeros((n_p, bins_2d, bins_2d))
    p2s = np.zeros((n_p, bins_2d, bins_2d))
    cx = np.zeros((n_p, bins_2d))
    cy = np.zeros((n_p, bins_2d))
    kl2, hel2 = np.zeros(n_p), np.zeros(n_p)
    for i, (a, b) in enumerate(pairs):
        ex = np.linspace(edges[a, 0], edges[a, -1], bins_2d + 1)
        ey = np.linspace(edges[b, 0], edges[b, -1], bins_2d + 1)
        hd = np.histogram2d(Xd[:, a], Xd[:, b], bins=(ex, ey))[0]
        hs = np.histogram2d(Xs[:, a], Xs[:, b], bins=(ex, ey))[0]
        area = (ex[1] - ex[0]) * (ey[1] - ey[0])
        p2d[i] = hd / (hd.sum() * area)
        p2s[i] = hs / (hs.sum() * area)
        cx[i], cy[i] = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
        kl2[i] = kl_divergence(hd, hs, floor=kl_floor)
        hel2[i] = hellinger(hd, hs)
    pa = np.array([p[0] for p in pairs], dtype=np.int64)
    pb = np.array([p[1] for p in pairs], dtype=np.int64)
    coords = {
        "pair": ("pair", np.arange(n_p)),
        "feature_x": ("pair", pa),
        "feature_y": ("pair", pb),
        "label_x": ("pair", np.array([labels[i] for i in pa], dtype=str)),
        "label_y": ("pair", np.array([labels[i] for i in pb], dtype=str)),
        "center_x": (("pair", "bin_x"), cx),
        "center_y": (("pair", "bin_y"), cy),
    }
    P = ("pair", "bin_x", "bin_y")
    dv = {
        "pdf2_data": (P, p2d, {"long_name": "bivariate PDF, data"}),
        "pdf2_sim": (P, p2s, {"long_name": "bivariate PDF, simulation"}),
        "kl_2d": (("pair",), kl2, {"long_name": "KL(data || sim) of the bivariate histograms"}),
        "hellinger_2d": (("pair",), hel2,
                         {"long_name": "Hellinger distance of the bivariate histograms"}),
    }
    return coords, dv


def _nanmean(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(x)) if np.size(x) else float("nan")


def _summary(data: _Series, sim: _Series, dv, acf_attrs, dim, member_dim, bins, bins_2d,
             kl_floor):
    """The report's attributes: what was compared and the means of the distances over
    features."""
    attrs = {
        "xlangevin_object": "comparison",
        "xlangevin_version": __version__,
        "sample_dim": dim,
        "member_dim": member_dim,
        "variables": ",".join(data.space.variables),
        "n_samples_data": int(data.X.shape[0]),
        "n_samples_sim": int(sim.X.shape[0]),
        "n_members_sim": acf_attrs["n_members_sim"],
        "n_sequences_data": int(len(data.bounds) - 1),
        "bins": bins,
        "bins_2d": bins_2d,
        "kl_floor": kl_floor,
        "lag_step": acf_attrs["lag_step"],
        "lag_units": acf_attrs["lag_units"],
        **{f"{name}_mean": _nanmean(dv[name][1])
           for name in ("kl", "hellinger", "wasserstein", "wasserstein_std", "acf_rmse")},
    }
    return attrs | ({"note": acf_attrs["note"]} if "note" in acf_attrs else {})


def compare(data, sim, dim: str = "time", variables=None, bins: int = 60, max_lag=None,
            n_lags: int | None = None, pairs=None, member_dim: str = "member",
            bins_2d: int | None = None, kl_floor: float = KL_FLOOR,
            baseline=None) -> xr.Dataset:
    """Compare a simulation with the data it should reproduce: PDFs, ACFs and distances.

    Parameters
    ----------
    data : xr.Dataset or xr.DataArray
        The reference series, with sample dim ``dim`` and optionally a ``member_dim`` of
        independent sequences. Gaps in the time coordinate split it into separate sequences.
    sim : xr.Dataset or xr.DataArray
        The same variables and features, usually with a ``member_dim`` (as returned by
        ``LangevinModel.generate``); without it, it counts as a single member.
    dim, member_dim : names of the sample (time) and ensemble dims.
    variables : Dataset variables to compare (default: every variable of data with ``dim``).
    bins : number of histogram bins per feature for the marginal PDFs. Each feature gets one
        uniform grid from the smallest to the largest value found in data *and* sim.
    bins_2d : bins per axis of the bivariate PDFs (same ranges as the marginal grids). Default
        ``sqrt(n / 20)`` clipped to [10, 40], with ``n`` the smaller of the two sample counts,
        so that cells hold ~20 samples on average: with sparser cells the 2-D KL is dominated by
        the floor penalty of cells the model happens to leave empty.
    max_lag : largest ACF lag, in time units (the units of the sample coordinate's step).
    n_lags : number of ACF lag steps (used when ``max_lag`` is None). Default: five integrated
        autocorrelation times of the slowest data feature (:func:`integrated_time_from_acf` of
        its ACF pooled over members), at least 10 and at most half the longest sequence (and at
        most 5000 lag steps).
    pairs : feature pairs for the bivariate PDFs, as ``[(i, j), ...]`` of indices or labels;
        default the consecutive pairs (0, 1), (1, 2), (2, 3) that exist. ``[]`` for none.
    kl_floor : the floor on the model's bin masses in ``KL(data || sim)``, see
        :func:`kl_divergence`.
    baseline : a simulation of a baseline model (e.g. of :func:`xlangevin.lim`: LIM, or AR(1)
        for one variable), or ``{name: simulation}``: compared with the data on the same bins
        (then spanning data, sim and baselines) and lags, its distances stand beside the
        model's (below), so that the report answers "better than the baseline?".

    Returns
    -------
    xr.Dataset with dim ``feature`` (coords ``variable``, ``label``) and

    * ``pdf_data``, ``pdf_sim`` (feature, bin): histogram densities, on the grid
      ``bin_center`` (feature, bin) with widths ``bin_width`` (feature);
    * ``pdf2_data``, ``pdf2_sim`` (pair, bin_x, bin_y) on ``center_x`` / ``center_y``; the pair
      features are ``feature_x`` / ``feature_y`` (labels ``label_x`` / ``label_y``);
    * ``acf_data``, ``acf_sim`` (feature, lag) and ``acf_sim_member`` (member, feature, lag),
      ``lag`` in time units. ACFs are computed within each sequence (a member, or a piece
      between time gaps) and pooled over the pieces of one member; ``acf_sim`` (and
      ``acf_data`` for data with members) is the mean over members;
    * distances per feature: ``kl`` = KL(data || sim) and ``hellinger`` on the histograms,
      ``wasserstein`` (W1 on the samples, data units), ``wasserstein_std`` (W1 over the data's
      std), ``acf_rmse`` (over lags 0..max); per pair ``kl_2d``, ``hellinger_2d``;
    * ``mean_data``, ``mean_sim``, ``std_data``, ``std_sim`` (feature);
    * attrs: the means over features ``kl_mean``, ``hellinger_mean``, ``wasserstein_mean``,
      ``wasserstein_std_mean``, ``acf_rmse_mean`` and what was compared;
    * with ``baseline``: ``baseline_kl``, ``baseline_hellinger``, ``baseline_wasserstein_std``,
      ``baseline_acf_rmse`` (baseline, feature), their means ``baseline_<distance>_mean``
      (baseline) and ``baseline_mean_sim``, ``baseline_std_sim`` (baseline, feature).

    Histogram distances carry a small positive finite-sample bias, roughly ``(bins - 1) / 2``
    times ``1 / N_eff(data) + 1 / N_eff(sim)`` for KL, with ``N_eff`` the effective (decorrelated)
    sample counts; compare models at equal record lengths. Draw the result with
    :func:`xlangevin.analysis.plot.comparison`.
    """
    bins = int(bins)
    if bins < 2 or (bins_2d is not None and int(bins_2d) < 2):
        raise ValueError(f"bins and bins_2d must be >= 2, got {bins} and {bins_2d}")
    data, sim, variables = _align_inputs(data, sim, variables)
    if dim not in sim.dims:
        raise DataError(f"sample dim {dim!r} not in sim dims {tuple(sim.dims)}")
    space_d, space_s = _feature_spaces(data, sim, dim, variables, member_dim)
    labels = space_d.feature_labels()
    sd, ss = _series(space_d, data, dim), _series(space_s, sim, dim)
    Xd, Xs = sd.X, ss.X
    baselines = _baseline_series(data, baseline, dim, variables, member_dim)
    Xo = np.concatenate([Xs] + [series.X for series, _ in baselines.values()])
    if bins_2d is None:
        bins_2d = int(np.clip(np.sqrt(min(len(Xd), len(Xs)) / 20.0), 10, 40))
    bins_2d = int(bins_2d)

    acf_coords, acf_vars, acf_attrs = _acf_part(sd, ss, max_lag, n_lags,
                                                _member_coord(sim, member_dim), member_dim)
    edges = np.stack([_grid(Xd[:, j], Xo[:, j], bins) for j in range(Xd.shape[1])])
    marginal_coords, marginal_vars = _marginal_part(Xd, Xs, edges, kl_floor)
    pair_coords, pair_vars = _pair_part(Xd, Xs, edges, _pairs(pairs, labels), labels, bins_2d,
                                        kl_floor)
    coords = {**space_d.feature_coords("feature"), **marginal_coords, **acf_coords,
              **pair_coords}
    found = {**marginal_vars, **pair_vars, **acf_vars}
    dv = {name: found[name] for name in REPORT_VARIABLES}
    attrs = _summary(sd, ss, dv, acf_attrs, dim, member_dim, bins, bins_2d, kl_floor)
    report = xr.Dataset(dv, coords=coords, attrs=attrs)
    return _with_baselines(report, sd, baselines, edges, kl_floor, member_dim)


#: the distances of a baseline put beside the model's
BASELINE_VARIABLES = ("kl", "hellinger", "wasserstein_std", "acf_rmse", "mean_sim", "std_sim")


def _baseline_series(data, baseline, dim, variables, member_dim) -> dict:
    """``{name: (series, member coordinate)}`` of the baseline simulations (none: ``{}``)."""
    if baseline is None:
        return {}
    named = baseline if isinstance(baseline, dict) else {"baseline": baseline}
    out = {}
    for name, sim in named.items():
        data_, sim, variables_ = _align_inputs(data, sim, variables)
        space = _feature_spaces(data_, sim, dim, variables_, member_dim)[1]
        out[str(name)] = (_series(space, sim, dim), _member_coord(sim, member_dim))
    return out


def _with_baselines(report, data: _Series, baselines, edges, kl_floor, member_dim):
    """``report`` with each baseline's distances on the same bins (``edges`` span data, sim
    and baselines) and the same lags as the model's."""
    if not baselines:
        return report
    lag = report["lag"].values
    parts = []
    for name, (series, members) in baselines.items():
        found = dict(_marginal_part(data.X, series.X, edges, kl_floor)[1])
        found.update(_acf_part(data, series, float(lag[-1]) if lag.size > 1 else None,
                               None if lag.size > 1 else 1, members, member_dim)[1])
        parts.append(xr.Dataset({v: found[v] for v in BASELINE_VARIABLES},
                                coords={"feature": report["feature"]}
                                ).expand_dims(baseline=[name]))
    both = xr.concat(parts, dim="baseline")
    out = report.copy()
    for v in BASELINE_VARIABLES:
        out[f"baseline_{v}"] = both[v]
    for v in ("kl", "hellinger", "wasserstein_std", "acf_rmse"):
        out[f"baseline_{v}_mean"] = both[v].mean("feature", skipna=True)
    return out


def format_report(report: xr.Dataset) -> str:
    """The distances of a :func:`compare` report as a table: one row per feature (KL,
    Hellinger, W1/std, ACF RMSE), then their means (and those of each baseline)."""
    a = report.attrs
    rows = [f"{'feature':>12s} {'KL':>8s} {'Hellinger':>10s} {'W1/std':>8s} {'ACF RMSE':>9s}"]
    for i, label in enumerate(report["label"].values):
        rows.append(f"{str(label):>12s} {float(report.kl[i]):8.4f} "
                    f"{float(report.hellinger[i]):10.4f} {float(report.wasserstein_std[i]):8.4f} "
                    f"{float(report.acf_rmse[i]):9.4f}")
    rows.append(f"{'mean':>12s} {a['kl_mean']:8.4f} {a['hellinger_mean']:10.4f} "
                f"{a['wasserstein_std_mean']:8.4f} {a['acf_rmse_mean']:9.4f}")
    for name in report["baseline"].values if "baseline" in report.dims else ():
        b = report.sel(baseline=name)
        rows.append(f"{str(name)[:12]:>12s} {float(b.baseline_kl_mean):8.4f} "
                    f"{float(b.baseline_hellinger_mean):10.4f} "
                    f"{float(b.baseline_wasserstein_std_mean):8.4f} "
                    f"{float(b.baseline_acf_rmse_mean):9.4f}")
    return "\n".join(rows)
