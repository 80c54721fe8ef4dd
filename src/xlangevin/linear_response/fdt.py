r"""Linear response from the score: the generalized fluctuation-dissipation theorem.

For a stationary process with density ``p`` and score ``s = grad log p``, a small perturbation of
the drift ``b -> b + eps u(x) f(t)`` changes the mean of an observable ``A`` by
``delta<A>(t) = eps int R_A(t - t') f(t') dt'`` with

    R_A(t) = -Cov(A(x(t)), B_u(x(0))),        B_u = div u + u . s

(Giorgini, Deck, Bischoff & Souza, "Response theory via generative score modeling", PRL 2024;
Marconi, Puglisi, Rondoni & Vulpiani, Physics Reports 2008). For a constant direction ``u``,
``B_u = u . s``; an impulse ``f = delta(t)`` is a kick ``x -> x + eps u``, whose mean response
is ``eps R(t)`` (what :func:`~xlangevin.linear_response.perturbation_response` measures). For the
exact score the Stein identity gives ``R_x(0) = -<x s^T> u = u``. The quasi-Gaussian
approximation replaces ``s`` by ``-C(0)^{-1}(x - <x>)``: the mean response is then
``R_x(t) = C(t) C(0)^{-1} u``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.stats import lagged_cross_sums
from ..base import provenance
from ..data import DataError, feature_data
from ..data.timeaxis import time_units
from ..score import score_estimator
from .observables import observable_functions

__all__ = ["response", "forced_response", "forcing_directions", "conjugate_observables",
           "evaluate_observables", "response_dataset", "ar1_null_stderr"]


def forcing_directions(forcing, d: int):
    """The forcing as ``(directions (m, d) or None, callable or None, labels)``: None means the
    unit vector of every feature; an array (d,) or (m, d) constant directions (physical units);
    a callable ``u(x)`` of (n, d) physical states."""
    if forcing is None:
        return np.eye(d), None, None
    if callable(forcing):
        return None, forcing, [getattr(forcing, "__name__", "u")]
    U = np.atleast_2d(np.asarray(forcing, dtype=np.float64))
    if U.ndim != 2 or U.shape[1] != d or not np.all(np.isfinite(U)):
        raise ValueError(f"forcing must be None, a callable u(x), or finite direction(s) of "
                         f"shape ({d},) or (m, {d}); got shape {np.shape(forcing)}")
    return U, None, None


def _divergence(u, X, h=1e-5):
    """``div u`` at ``X`` by central differences (steps ``h`` times the data's scale)."""
    scale = np.maximum(X.std(0), 1e-300) * h
    div = np.zeros(len(X))
    for i in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[i] = scale[i]
        div += (np.asarray(u(X + e))[:, i] - np.asarray(u(X - e))[:, i]) / (2 * scale[i])
    return div


def conjugate_observables(X, S, forcing):
    """``B_u(x) = div u + u . s`` at physical states ``X`` with scores ``S``, one column per
    forcing: (n, m)."""
    U, u, _ = forcing_directions(forcing, X.shape[1])
    if U is not None:
        return S @ U.T
    values = np.asarray(u(X), dtype=np.float64)
    if values.shape != X.shape or not np.all(np.isfinite(values)):
        raise DataError(f"the forcing u(x) must return finite values of the states' shape "
                        f"{X.shape}, got {values.shape}")
    return (_divergence(u, X) + np.sum(values * S, axis=1))[:, None]


def _scores(features, X, score, seed):
    """The physical score at the states ``X`` (n, d): ``"gaussian"`` (quasi-Gaussian), a
    ScoreModel or callable, or an estimator name fitted on the same data."""
    if isinstance(score, str) and score == "gaussian":
        C = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
        return -np.linalg.solve(C, (X - X.mean(0)).T).T, "gaussian"
    if isinstance(score, str):
        score = score_estimator(score, seed=seed, progress=False).fit_features(features)
    if not callable(score):
        raise TypeError(f"score must be 'gaussian', an estimator name, a ScoreModel or a "
                        f"callable of (n, d) physical states; got {type(score).__name__}")
    S = np.asarray(score(X), dtype=np.float64)
    if S.shape != X.shape or not np.all(np.isfinite(S)):
        raise DataError(f"the score must give finite values of shape {X.shape}, got {S.shape}")
    return S, getattr(score, "method", "callable")


def response(data, score="gaussian", forcing=None, observables=("x",), max_lag=None,
             dim: str = "time", stein_correction: bool = False, n_batches: int = 10,
             seed=None) -> xr.Dataset:
    """Response functions ``R(lag, observable, forcing)`` of the record ``data`` (module
    docstring), from its lagged covariances with the conjugate observables.

    Parameters
    ----------
    data : xarray (DataArray/Dataset, regular sample coordinate; members and gaps split it into
        sequences) or an (n, d) array of consecutive samples.
    score : ``"gaussian"`` (default: the quasi-Gaussian approximation), a ScoreModel or a
        callable of (n, d) physical states (e.g. an exact score), or an estimator name
        (``"auto"``, ``"kgmm"``, ...) fitted on ``data`` first.
    forcing : None (default: a unit forcing of every feature, physical units), constant
        direction(s) (d,) or (m, d), or a callable ``u(x)`` (its divergence by central
        differences).
    observables : names (``"x"``, ``"x**2"``, ``"x**3"``, ``"x**4"``: powers of the deviation
        from the data mean) and/or callables of (n, d) physical states.
    max_lag : largest lag in samples (default: a tenth of the longest sequence).
    stein_correction : replace ``s`` by ``(-<s x^T>)^{-1} s`` so that ``R_x(0) = u`` exactly
        (for a learned score that misses the Stein identity; off by default).
    n_batches : the record is cut into this many contiguous batches; the spread of their
        responses gives ``response_stderr`` (batch means; 0 or 1: none).
    seed : for an estimator fitted here.

    Returns
    -------
    xr.Dataset with ``response`` (lag, observable, forcing): ``R`` in units of the observable
    per unit forcing and time, and its batch-means standard error ``response_stderr`` (for
    ``score="gaussian"`` with unit forcings also ``response_stderr_ar1`` (lag, feature), the
    band of each feature's self-response under an AR(1) null model); ``lag``
    in the data's time units; ``observable`` labels ``name[feature]`` (coords
    ``observable_name``, ``component``); attrs: the score method, the Stein check
    ``stein_deviation = max |R_x(0) - u|`` (for constant forcings) and provenance.
    """
    features = feature_data(data, dim=dim, sequences=True).in_memory()
    space, bounds = features.space, features.bounds
    X = space.to_physical(np.asarray(features.X, dtype=np.float64))
    n, d = X.shape
    S, method = _scores(features, X, score, seed)
    if stein_correction:
        V = S.T @ (X - X.mean(0)) / n
        S = np.linalg.solve(-V, S.T).T
    B = conjugate_observables(X, S, forcing)
    if max_lag is None:
        max_lag = max(1, int(np.max(np.diff(bounds))) // 10)
    if not (isinstance(max_lag, (int, np.integer)) and max_lag >= 0):
        raise ValueError(f"max_lag must be a non-negative integer (samples), got {max_lag!r}")
    functions = observable_functions(observables, X.mean(0))
    labels = [str(v) for v in space.feature_labels()]
    values, names, components = evaluate_observables(functions, X, labels)
    edges = np.linspace(0, n, max(int(n_batches), 1) + 1).astype(int)
    sums, counts = lagged_cross_sums(values, B, bounds, int(max_lag), edges)
    R = -sums.sum(0) / counts.sum(0)[:, None, None]
    attrs = provenance(None, score_method=method, n_samples=int(n),
                       stein_correction=bool(stein_correction), n_batches=int(n_batches),
                       formula="R(t) = -Cov(A(x(t)), div u + u . s(x(0)))")
    ds = response_dataset(R, np.arange(R.shape[0]) * float(space.dt), time_units(space),
                          labels, names, components, forcing, attrs)
    if n_batches > 1:
        if method == "gaussian" and forcing is None:
            # the quasi-Gaussian estimate is C(k) C(0)^-1 with the record's C(0): each batch
            # uses its own C(0) too, whose errors cancel those of its C(k)
            own = lagged_cross_sums(X, X, bounds, 0, edges)
            C = (X - X.mean(0)).T @ (X - X.mean(0)) / n
            sums = np.stack([sums[g] @ (C @ np.linalg.inv(own[0][g, 0] / own[1][g, 0]))
                             if own[1][g, 0] > 0 else sums[g] for g in range(len(sums))])
        ds["response_stderr"] = (("lag", "observable", "forcing"), _batch_stderr(sums, counts))
    if method == "gaussian" and forcing is None:
        ds["response_stderr_ar1"] = (("lag", "feature"), ar1_null_stderr(X, bounds,
                                                                          int(max_lag)),
                                     {"long_name": "standard error of the quasi-Gaussian "
                                      "self-response R_ii under an AR(1) null model"})
    return ds


def ar1_null_stderr(X, bounds, max_lag: int) -> np.ndarray:
    """Bartlett's standard error of the lag-``k`` autocorrelation of an AR(1) series with the
    lag-one autocorrelation ``phi`` of each feature, over ``n`` samples (k = 0..max_lag):

        var r_k = [(1 + phi^2)(1 - phi^(2k)) / (1 - phi^2) - 2 k phi^(2k)] / n,

    the band of the quasi-Gaussian response of a feature to its own forcing, ``R_ii(k) =
    r_k`` for one variable (Box, Jenkins & Reinsel, "Time Series Analysis", eq. 2.1.15)."""
    rho = lagged_cross_sums(X, X, bounds, 1, [0, len(X)])
    C = rho[0][0] / rho[1][0][:, None, None]
    phi = np.clip(np.diag(C[1]) / np.diag(C[0]), -0.999999, 0.999999)
    k = np.arange(max_lag + 1)[:, None]
    var = ((1 + phi**2) * (1 - phi ** (2 * k)) / (1 - phi**2) - 2 * k * phi ** (2 * k))
    return np.sqrt(np.maximum(var, 0.0) / len(X))


def _batch_stderr(sums, counts):
    """Standard error of ``R`` from the spread of its estimates on the batches (those that
    reach every lag)."""
    full = counts[:, -1] > 0
    if full.sum() < 2:
        return np.full(sums.shape[1:], np.nan)
    estimates = -sums[full] / counts[full][:, :, None, None]
    return np.std(estimates, axis=0, ddof=1) / np.sqrt(full.sum())


def evaluate_observables(functions, X, labels):
    """The observables' values at ``X`` side by side (n, p), with each column's observable name
    and component (the feature's label, or the column index of a callable's output)."""
    columns, names, components = [], [], []
    for name, fn in functions.items():
        values = fn(X)
        columns.append(values)
        names += [name] * values.shape[1]
        components += (labels if values.shape[1] == len(labels)
                       else [str(i) for i in range(values.shape[1])])
    return np.concatenate(columns, axis=1), names, components


def response_dataset(R, lags, units, labels, names, components, forcing, attrs):
    """The labelled Dataset of ``R`` (lag, observable, forcing), with the Stein check
    ``stein_deviation = max |R_x(0) - u|`` for constant forcings."""
    U, _, flabels = forcing_directions(forcing, len(labels))
    if flabels is None:
        flabels = labels if forcing is None else [f"u{j}" for j in range(len(U))]
    mean_rows = [i for i, name in enumerate(names) if name == "x"]
    if U is not None and mean_rows:
        attrs = {**attrs, "stein_deviation": float(np.max(np.abs(R[0][mean_rows] - U.T)))}
    ds = xr.Dataset(
        {"response": (("lag", "observable", "forcing"), R,
                      {"long_name": "linear response function R(t)",
                       "units": "observable per unit forcing and time"})},
        coords={"lag": ("lag", np.asarray(lags, dtype=np.float64), {"units": units}),
                "observable": [f"{a}[{b}]" for a, b in zip(names, components)],
                "observable_name": ("observable", names),
                "component": ("observable", components),
                "forcing": flabels},
        attrs=attrs)
    if U is not None:
        ds["direction"] = (("forcing", "feature"), U)
        ds = ds.assign_coords(feature=labels)
    return ds


def forced_response(R: xr.Dataset, forcing) -> xr.DataArray:
    """``delta<A>(t) = sum_j int_0^t R_j(t') f_j(t - t') dt'`` for forcing amplitudes ``f``
    (per unit ``eps``) sampled at the lag step ``h`` of ``R`` from the moment they start: an
    array (n_t,) for a single forcing of ``R`` or (n_t, n_forcing). The integral is the sum
    ``h sum_k w_k R(t_k) f(t_n - t_k)`` with ``w_0 = 1/2`` (the half step at the kick), ``w_k =
    1`` otherwise: first order in ``h``; lags beyond those of ``R`` are cut. Returns (time,
    observable): e.g. a step ``f = 1`` gives the approach to the new mean, a sine the periodic
    response."""
    f = np.asarray(forcing, dtype=np.float64)
    f = f[:, None] if f.ndim == 1 else f
    if f.ndim != 2 or f.shape[1] != R.sizes["forcing"] or not np.all(np.isfinite(f)):
        raise ValueError(f"forcing must be finite, shaped (n_t,) or (n_t, {R.sizes['forcing']})"
                         f" for the {R.sizes['forcing']} forcing(s) of R; got {np.shape(forcing)}")
    step = float(R["lag"][1] - R["lag"][0]) if R.sizes["lag"] > 1 else 1.0
    weights = np.ones(R.sizes["lag"])
    weights[0] = 0.5
    kernel = R["response"].values * weights[:, None, None] * step     # (lag, observable, forcing)
    n_t = f.shape[0]
    out = np.zeros((n_t, R.sizes["observable"]))
    for k in range(min(R.sizes["lag"], n_t)):
        out[k:] += f[:n_t - k] @ kernel[k].T
    return xr.DataArray(out, dims=("time", "observable"),
                        coords={"time": np.arange(n_t) * step, "observable": R["observable"]},
                        name="forced_response",
                        attrs={"long_name": "linear response of the observables' means",
                               "units": "observable per unit forcing amplitude"})
