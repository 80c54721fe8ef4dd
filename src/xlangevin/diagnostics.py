"""Statistics of time series and the comparison of data with simulations.

* autocorrelation functions (FFT) and effective sample sizes;
* distances between distributions: :func:`kl_divergence`, :func:`hellinger`,
  :func:`wasserstein1`, and :func:`acf_rmse` between ACFs;
* :func:`compare` (``xlangevin.compare``): marginal and bivariate PDFs, ACFs and distances of a
  simulation against data, as an ``xr.Dataset`` (drawn by :func:`xlangevin.plot.comparison`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ._version import __version__
from .data import DataError, FeatureSpace
from .ot import entropic_ot_distance

__all__ = ["acf", "integrated_autocorrelation_time", "effective_sample_size", "kl_divergence",
           "hellinger", "wasserstein1", "acf_rmse", "compare", "entropic_ot_distance", "KL_FLOOR"]


def acf(x, max_lag: int | None = None, axis: int = 0) -> np.ndarray:
    """Autocorrelation ``C(k) / C(0)`` along ``axis`` for lags ``0..max_lag``, via FFT.

    ``C(k) = mean_t (x_t - m)(x_{t+k} - m)`` with the full-record mean ``m`` and the biased
    (1/n) normalization, which keeps the estimate positive definite.
    """
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples along axis {axis}, got {n}")
    max_lag = n - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n:
        raise ValueError(f"max_lag must be in [0, {n - 1}], got {max_lag}")
    y = x - x.mean(axis=0)
    nfft = 1 << int(np.ceil(np.log2(2 * n - 1)))
    f = np.fft.rfft(y, n=nfft, axis=0)
    c = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[: max_lag + 1] / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = c / c[0]
    return np.moveaxis(r, 0, axis)


def integrated_autocorrelation_time(x, axis: int = 0) -> np.ndarray:
    """``tau = 1 + 2 sum_{k>=1} rho(k)`` in samples, summed up to the first negative ``rho``
    (initial-positive-sequence window), per column."""
    r = np.moveaxis(acf(x, axis=axis), axis, 0)
    r2 = r.reshape(r.shape[0], -1)
    tau = np.empty(r2.shape[1])
    for j in range(r2.shape[1]):
        neg = np.flatnonzero(r2[1:, j] < 0)
        stop = neg[0] + 1 if neg.size else r2.shape[0]
        tau[j] = max(1.0, 1.0 + 2.0 * r2[1:stop, j].sum())
    return tau.reshape(r.shape[1:])


def effective_sample_size(x, axis: int = 0) -> np.ndarray:
    """``n / tau``: the number of effectively independent samples, per column."""
    n = np.asarray(x).shape[axis]
    return n / integrated_autocorrelation_time(x, axis=axis)


# =============================================================================================
# Distances between distributions
# =============================================================================================

KL_FLOOR = 1e-10


def _as_masses(p, axis):
    p = np.asarray(p, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities/counts must be finite and non-negative")
    total = p.sum(axis=axis, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("each distribution needs a positive total mass")
    return p / total


def kl_divergence(p, q, floor: float = KL_FLOOR, axis=None):
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i log(p_i / q_i)`` of discrete
    distributions (histogram counts, masses or densities on a common uniform grid).

    ``p`` and ``q`` are normalized to unit mass over ``axis`` (default: all axes). Cells with
    ``p_i = 0`` contribute 0. Cells where ``q`` is empty would make the divergence infinite, so
    ``q`` is floored at ``floor`` (a mass per cell, default 1e-10) and renormalized: one empty
    cell holding data mass ``p_i`` then adds about ``p_i log(p_i / floor)`` (at most
    ``p_i * 23`` for the default), a large but finite penalty for a model that misses a region
    the data visit. Returns a float for ``axis=None``, else an array without ``axis``.
    """
    p = _as_masses(p, axis)
    q = _as_masses(q, axis)
    if p.shape != q.shape:
        raise ValueError(f"p and q have different shapes {p.shape} and {q.shape}")
    if floor < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    q = np.where(p > 0, np.maximum(q, floor), q)  # cells without data mass need no floor
    q = q / q.sum(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
    out = terms.sum(axis=axis)
    out = np.maximum(out, 0.0)  # rounding can give -1e-17
    return float(out) if np.ndim(out) == 0 else out


def hellinger(p, q, axis=None):
    """Hellinger distance ``H = sqrt(1 - sum_i sqrt(p_i q_i))`` in [0, 1] of discrete
    distributions (normalized over ``axis``, default all axes). 0 for identical, 1 for disjoint
    supports. For two Gaussians ``H^2 = 1 - sqrt(2 s1 s2 / (s1^2 + s2^2))
    exp(-(m1 - m2)^2 / (4 (s1^2 + s2^2)))``."""
    p = _as_masses(p, axis)
    q = _as_masses(q, axis)
    if p.shape != q.shape:
        raise ValueError(f"p and q have different shapes {p.shape} and {q.shape}")
    bc = np.sqrt(p * q).sum(axis=axis)
    out = np.sqrt(np.clip(1.0 - bc, 0.0, 1.0))
    return float(out) if np.ndim(out) == 0 else out


def wasserstein1(x, y) -> float:
    """Wasserstein-1 (earth mover's) distance between the empirical distributions of two 1-D
    samples, ``int |F_x(t) - F_y(t)| dt`` (``scipy.stats.wasserstein_distance``), in the units
    of ``x``. ``W1(N(0, 1), N(m, 1)) = |m|``."""
    from scipy.stats import wasserstein_distance

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("wasserstein1 needs non-empty samples")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("wasserstein1: samples contain NaN or inf")
    return float(wasserstein_distance(x, y))


def acf_rmse(a, b, axis: int = -1):
    """Root-mean-square difference of two autocorrelation functions over the lags on ``axis``
    (``sqrt(mean_k (a_k - b_k)^2)``; lags where either is NaN are skipped)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ACFs have different shapes {a.shape} and {b.shape}")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        out = np.sqrt(np.nanmean((a - b) ** 2, axis=axis))
    return float(out) if np.ndim(out) == 0 else out


# =============================================================================================
# Data vs simulation
# =============================================================================================

def _autocov_sums(y, k_max):
    """``c(k) = sum_t y_t y_{t+k}`` for k = 0..k_max (columns of y, already centred), by FFT,
    features processed in blocks to bound memory."""
    n, d = y.shape
    from scipy.fft import irfft, next_fast_len, rfft

    nfft = next_fast_len(n + k_max)
    out = np.empty((k_max + 1, d))
    block = max(1, int(2**24 // nfft))
    for j in range(0, d, block):
        f = rfft(y[:, j:j + block], n=nfft, axis=0)
        out[:, j:j + block] = irfft(f * np.conj(f), n=nfft, axis=0)[: k_max + 1]
    return out


def _sequence_acf(X, bounds, n_t, n_lags, stride):
    """ACF per group (member) at lags ``0, stride, ..., n_lags*stride`` samples.

    Each contiguous sequence (member, or a piece between time gaps) is centred on its own mean;
    products ``y_t y_{t+k}`` are summed within sequences only (never across members or gaps)
    and pooled over the sequences of one member: ``rho(k) = sum_s c_s(k) / sum_s c_s(0)``.
    Lags no sequence of a member reaches are NaN. Returns (n_groups, n_lags + 1, d).
    """
    kf = n_lags * stride
    n_groups = int(bounds[-1] // n_t)
    d = X.shape[1]
    num = np.zeros((n_groups, kf + 1, d))
    reach = np.full(n_groups, -1)
    for a, b in zip(bounds[:-1], bounds[1:]):
        n = int(b - a)
        if n < 2:
            continue
        g = int(a // n_t)
        k = min(kf, n - 1)
        seg = np.asarray(X[a:b], dtype=np.float64)
        num[g, : k + 1] += _autocov_sums(seg - seg.mean(axis=0), k)
        reach[g] = max(reach[g], k)
    num = num[:, ::stride]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / num[:, :1]
    lags = np.arange(n_lags + 1) * stride
    r[lags[None, :] > reach[:, None]] = np.nan
    return r


def _longest(bounds):
    return int(np.max(np.diff(bounds))) if len(bounds) > 1 else 0


def _step_info(space, obj):
    """(dt, units, has_coord) of the sample coordinate, dt in the units of ``lag``."""
    kind = space.time["kind"]
    if kind == "index":
        return 1.0, "samples", False
    if kind in ("datetime", "cftime"):
        if space.time.get("freq"):
            return 1.0, f"steps of {space.time['freq']}", True
        return space.dt, "days", True
    return space.dt, space.time.get("units", "") or "", True


def _strides(space_d, obj_d, space_s, obj_s):
    """Common lag step of data and sim: (dt, units, stride_data, stride_sim, note)."""
    dt_d, u_d, has_d = _step_info(space_d, obj_d)
    dt_s, u_s, has_s = _step_info(space_s, obj_s)
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


def compare(data, sim, dim: str = "time", variables=None, bins: int = 60, max_lag=None,
            n_lags: int | None = None, pairs=None, member_dim: str = "member",
            bins_2d: int | None = None, kl_floor: float = KL_FLOOR) -> xr.Dataset:
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
        autocorrelation times of the slowest data feature, at least 10 and at most half the
        longest sequence (and at most 5000 lag steps).
    pairs : feature pairs for the bivariate PDFs, as ``[(i, j), ...]`` of indices or labels;
        default the consecutive pairs (0, 1), (1, 2), (2, 3) that exist. ``[]`` for none.
    kl_floor : the floor on the model's bin masses in ``KL(data || sim)``, see
        :func:`kl_divergence`.

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
      ``wasserstein_std_mean``, ``acf_rmse_mean`` and what was compared.

    Histogram distances carry a small positive finite-sample bias, roughly ``(bins - 1) / 2``
    times ``1 / N_eff(data) + 1 / N_eff(sim)`` for KL, with ``N_eff`` the effective (decorrelated)
    sample counts; compare models at equal record lengths. Draw the result with
    :func:`xlangevin.plot.comparison`.
    """
    bins = int(bins)
    if bins < 2 or (bins_2d is not None and int(bins_2d) < 2):
        raise ValueError(f"bins and bins_2d must be >= 2, got {bins} and {bins_2d}")
    data, sim, variables = _align_inputs(data, sim, variables)
    if dim not in sim.dims:
        raise DataError(f"sample dim {dim!r} not in sim dims {tuple(sim.dims)}")
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

    Xd = np.asarray(space_d.transform(data), dtype=np.float64)
    Xs = np.asarray(space_s.transform(sim), dtype=np.float64)
    if bins_2d is None:
        bins_2d = int(np.clip(np.sqrt(min(len(Xd), len(Xs)) / 20.0), 10, 40))
    bins_2d = int(bins_2d)
    d = Xd.shape[1]
    bounds_d = space_d.sequence_bounds(data)
    bounds_s = space_s.sequence_bounds(sim)
    nt_d, nt_s = data.sizes[dim], sim.sizes[dim]

    # ---- ACF lags ---------------------------------------------------------------------------
    dt, units, sd, ss, note = _strides(space_d, data, space_s, sim)
    avail = min((_longest(bounds_d) - 1) // sd, (_longest(bounds_s) - 1) // ss)
    if avail < 1:
        raise DataError("the sequences are too short for an ACF at the common time step")
    if max_lag is not None:
        if isinstance(max_lag, (np.timedelta64, pd.Timedelta)) or hasattr(max_lag, "days"):
            max_lag = pd.Timedelta(max_lag) / pd.Timedelta(1, "D")
        k = float(max_lag) / dt
        if not k >= 1:
            raise ValueError(f"max_lag={max_lag} is shorter than one time step ({dt:g} {units})")
        n_lags = int(np.floor(k + 1e-9))
    if n_lags is not None:
        n_lags = int(n_lags)
        if n_lags < 1:
            raise ValueError(f"n_lags must be >= 1, got {n_lags}")
        if n_lags > avail:
            raise DataError(f"{n_lags} lag steps asked for, but the longest common sequence "
                            f"allows {avail} (at {dt:g} {units} per step)")
        acf_d = _sequence_acf(Xd, bounds_d, nt_d, n_lags, sd)
    else:
        cap = max(1, min(avail // 2, 5000))
        acf_d = _sequence_acf(Xd, bounds_d, nt_d, cap, sd)
        r = np.nanmean(acf_d, axis=0) if acf_d.shape[0] > 1 else acf_d[0]
        taus = []
        for j in range(d):
            rj = r[1:, j]
            neg = np.flatnonzero(~(rj > 0))
            stop = neg[0] if neg.size else rj.size
            taus.append(1.0 + 2.0 * rj[:stop].sum())
        n_lags = int(min(cap, max(10, np.ceil(5 * max(taus)))))
        acf_d = acf_d[:, : n_lags + 1]
    acf_s = _sequence_acf(Xs, bounds_s, nt_s, n_lags, ss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acf_data = np.nanmean(acf_d, axis=0)
        acf_sim = np.nanmean(acf_s, axis=0)
    lag = np.arange(n_lags + 1) * dt

    # ---- marginal PDFs and distances --------------------------------------------------------
    edges = np.stack([_grid(Xd[:, j], Xs[:, j], bins) for j in range(d)])
    cnt_d = np.stack([np.histogram(Xd[:, j], bins=edges[j])[0] for j in range(d)]).astype(float)
    cnt_s = np.stack([np.histogram(Xs[:, j], bins=edges[j])[0] for j in range(d)]).astype(float)
    width = edges[:, 1] - edges[:, 0]
    pdf_d = cnt_d / (cnt_d.sum(1, keepdims=True) * width[:, None])
    pdf_s = cnt_s / (cnt_s.sum(1, keepdims=True) * width[:, None])
    kl = kl_divergence(cnt_d, cnt_s, floor=kl_floor, axis=1)
    hel = hellinger(cnt_d, cnt_s, axis=1)
    w1 = np.array([wasserstein1(Xd[:, j], Xs[:, j]) for j in range(d)])
    mean_d, mean_s = Xd.mean(0), Xs.mean(0)
    std_d, std_s = Xd.std(0), Xs.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w1_std = np.where(std_d > 0, w1 / std_d, np.nan)
    rmse = acf_rmse(acf_data.T, acf_sim.T, axis=-1)

    # ---- bivariate PDFs ---------------------------------------------------------------------
    if pairs is None:
        pairs = [(j, j + 1) for j in range(min(3, d - 1))]
    pairs = [(_feature_index(a, labels), _feature_index(b, labels)) for a, b in pairs]
    for a, b in pairs:
        if a == b:
            raise ValueError(f"pair ({a}, {b}) repeats a feature")
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

    # ---- assemble ---------------------------------------------------------------------------
    fc = space_d.feature_coords("feature")
    if member_dim in sim.dims:
        mcoord = sim[member_dim].values if member_dim in sim.coords else np.arange(acf_s.shape[0])
    else:
        mcoord = np.arange(1)
    pa = np.array([p[0] for p in pairs], dtype=np.int64)
    pb = np.array([p[1] for p in pairs], dtype=np.int64)
    coords = dict(fc)
    coords.update({
        "bin": ("bin", np.arange(bins)),
        "bin_center": (("feature", "bin"), 0.5 * (edges[:, 1:] + edges[:, :-1])),
        "bin_width": ("feature", width),
        "lag": ("lag", lag, {"long_name": "lag", "units": units}),
        member_dim: (member_dim, mcoord),
        "pair": ("pair", np.arange(n_p)),
        "feature_x": ("pair", pa),
        "feature_y": ("pair", pb),
        "label_x": ("pair", np.array([labels[i] for i in pa], dtype=str)),
        "label_y": ("pair", np.array([labels[i] for i in pb], dtype=str)),
        "center_x": (("pair", "bin_x"), cx),
        "center_y": (("pair", "bin_y"), cy),
    })
    F, L = ("feature",), ("feature", "lag")
    dv = {
        "pdf_data": (("feature", "bin"), pdf_d, {"long_name": "marginal PDF of the data"}),
        "pdf_sim": (("feature", "bin"), pdf_s, {"long_name": "marginal PDF of the simulation"}),
        "pdf2_data": (("pair", "bin_x", "bin_y"), p2d, {"long_name": "bivariate PDF, data"}),
        "pdf2_sim": (("pair", "bin_x", "bin_y"), p2s, {"long_name": "bivariate PDF, simulation"}),
        "acf_data": (L, acf_data.T, {"long_name": "autocorrelation of the data"}),
        "acf_sim": (L, acf_sim.T, {"long_name": "autocorrelation of the simulation, "
                                                "mean over members"}),
        "acf_sim_member": ((member_dim,) + L, np.transpose(acf_s, (0, 2, 1)),
                           {"long_name": "autocorrelation of each simulation member"}),
        "kl": (F, kl, {"long_name": "KL(data || sim) of the marginal histograms",
                       "floor": kl_floor}),
        "hellinger": (F, hel, {"long_name": "Hellinger distance of the marginal histograms"}),
        "wasserstein": (F, w1, {"long_name": "Wasserstein-1 distance of the samples",
                                "units": "data units"}),
        "wasserstein_std": (F, w1_std, {"long_name": "Wasserstein-1 / std of the data"}),
        "acf_rmse": (F, rmse, {"long_name": "RMSE of the ACFs over the compared lags"}),
        "kl_2d": (("pair",), kl2, {"long_name": "KL(data || sim) of the bivariate histograms"}),
        "hellinger_2d": (("pair",), hel2,
                         {"long_name": "Hellinger distance of the bivariate histograms"}),
        "mean_data": (F, mean_d), "mean_sim": (F, mean_s),
        "std_data": (F, std_d), "std_sim": (F, std_s),
    }

    def _m(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmean(x)) if np.size(x) else float("nan")

    attrs = {
        "xlangevin_object": "comparison",
        "xlangevin_version": __version__,
        "sample_dim": dim,
        "member_dim": member_dim,
        "variables": ",".join(space_d.variables),
        "n_samples_data": int(Xd.shape[0]),
        "n_samples_sim": int(Xs.shape[0]),
        "n_members_sim": int(acf_s.shape[0]),
        "n_sequences_data": int(len(bounds_d) - 1),
        "bins": bins,
        "bins_2d": bins_2d,
        "kl_floor": kl_floor,
        "lag_step": dt,
        "lag_units": units,
        "kl_mean": _m(kl),
        "hellinger_mean": _m(hel),
        "wasserstein_mean": _m(w1),
        "wasserstein_std_mean": _m(w1_std),
        "acf_rmse_mean": _m(rmse),
    }
    if note:
        attrs["note"] = note
    return xr.Dataset(dv, coords=coords, attrs=attrs)
