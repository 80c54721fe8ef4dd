r"""Physical-measure check of a learned map against data: :func:`physical_measure_report`.

A map is physical when the empirical measure of a long orbit, ``(1/n) sum delta_{x_k}``,
converges to the data's invariant measure (Park, Yang & Chandramoorthy, NeurIPS 2024). The
report compares one long orbit of the model with the data by

* Wasserstein-1 of each feature's marginal (physical units) and the sliced W1 of the joint
  measure (mean over ``n_directions`` random unit directions in standardized units);
* the time averages: mean and standard deviation of each feature;
* the Lyapunov exponents of the model (and of a reference spectrum when given).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.distances import wasserstein1

__all__ = ["physical_measure_report", "sliced_wasserstein1"]


def sliced_wasserstein1(X, Y, n_directions: int = 64, seed=0) -> float:
    """Mean over random unit directions ``u`` of ``W1(X u, Y u)`` ((n, d) samples)."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must be (n, d) with the same d, got {X.shape}, {Y.shape}")
    U = np.random.default_rng(seed).standard_normal((int(n_directions), X.shape[1]))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    return float(np.mean([wasserstein1(X @ u, Y @ u) for u in U]))


def physical_measure_report(model, data, n_steps: int | None = None, seed=0,
                            reference_exponents=None, lyapunov_options: dict | None = None,
                            n_directions: int = 64) -> xr.Dataset:
    """Orbit statistics of a learned map (:class:`~xlangevin.tangent.FlowMapModel`) against a
    trajectory ``data`` (xarray like the fitted data).

    One orbit of ``n_steps`` (default: as many as the data has samples) starts from a state
    drawn (``seed``) among the model's kept data states. ``lyapunov_options`` go to
    :func:`xlangevin.lyapunov` (``None``: ``t_total = 200``, ``qr_interval`` one step);
    ``reference_exponents`` (array or a :func:`xlangevin.lyapunov` Dataset) adds the relative
    error of each exponent. Returns an ``xr.Dataset`` over ``feature`` (and ``exponent``).
    """
    sp = model.space
    D = sp.to_physical(np.asarray(sp.transform(data), dtype=np.float64))
    n = len(D) if n_steps is None else int(n_steps)
    if n < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    rng = np.random.default_rng(seed)
    x0 = sp.to_physical(model.samples[rng.integers(len(model.samples))][None])[0]
    O = model.orbit(x0, n)
    w1 = np.array([wasserstein1(O[:, i], D[:, i]) for i in range(sp.n_features)])
    sliced = sliced_wasserstein1(sp.to_standard(O), sp.to_standard(D), n_directions, seed)
    units = {"units": "data units"}
    ds = xr.Dataset(
        {"w1": ("feature", w1, {"long_name": "W1 of the orbit's marginal to the data's",
                                **units}),
         "sliced_w1": ((), sliced, {"long_name": f"sliced W1 of the joint measures "
                                    f"({n_directions} directions, standardized units)"}),
         "mean_data": ("feature", D.mean(0), units), "mean_orbit": ("feature", O.mean(0), units),
         "std_data": ("feature", D.std(0), units), "std_orbit": ("feature", O.std(0), units)},
        coords=sp.feature_coords("feature"),
        attrs={"n_steps": n, "seed": str(seed), "model": repr(model)})
    opts = {"t_total": 200.0, "qr_interval": model.dt, "seed": seed, **(lyapunov_options or {})}
    spec = model.lyapunov(**opts)
    ds["exponents"] = spec["exponents"]
    ds["exponents_se"] = spec["standard_error"]
    ds["kaplan_yorke_dimension"] = spec["kaplan_yorke_dimension"]
    if reference_exponents is not None:
        ref = reference_exponents["exponents"] if isinstance(reference_exponents, xr.Dataset) \
            else np.asarray(reference_exponents, dtype=np.float64)
        ref = np.asarray(ref)[:spec.sizes["exponent"]]
        err = np.abs(spec["exponents"].values - ref)
        ds["exponents_reference"] = ("exponent", ref)
        ds["exponents_error"] = ("exponent", err, {"long_name": "|lambda - lambda_ref|"})
        ds["exponents_relative_error"] = ("exponent", err / np.maximum(np.abs(ref), 1e-12),
                                          {"long_name": "|lambda - lambda_ref| / |lambda_ref|"})
    return ds
