r"""Linear baselines: the linear inverse model (LIM) and, for one variable, AR(1)/OU.

With the Gaussian score ``s(x) = -C_0^{-1}(x - m)`` (:class:`xlangevin.score.Gaussian`) the
effective Langevin model is linear,

    dx = L (x - m) dt + sqrt(2) Sigma dW,     L = -Phi C_0^{-1},     Q = 2 Sigma Sigma^T = 2 Phi_S,

and with the matrix-log ``Cdot(0) = log(C(tau) C_0^{-1}) C_0 / tau`` it is the linear inverse
model of Penland & Sardeshmukh ("The optimal growth of tropical sea surface temperature
anomalies", J. Climate 8, 1995): ``L = log(C(tau) C_0^{-1}) / tau`` and the fluctuation-
dissipation relation ``L C_0 + C_0 L^T + Q = 0``. For one variable it is the AR(1) model sampled
at ``dt`` (an Ornstein-Uhlenbeck process with ``L = log(rho(tau)) / tau``). Its marginals are
Gaussian (skewness 0) by construction: the baseline a nonlinear score has to beat.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import DataError
from .langevin import EffectiveLangevin
from .model import LangevinModel

__all__ = ["lim", "lim_operators"]


def lim(data, lag: int = 1, dim: str = "time", variables=None, shrinkage: float = 0.0,
        n_keep: int = 1000, seed=None) -> LangevinModel:
    """The LIM (AR(1) for one variable) of ``data`` at lag ``lag`` samples, as a
    :class:`LangevinModel` (generate, compare and save it like any other); the operators
    ``L``, ``Q``, ``C_0`` in physical units come from :func:`lim_operators`.

    ``shrinkage`` regularizes ``C_0`` of short records with many variables
    (:class:`xlangevin.score.Gaussian`).
    """
    estimator = EffectiveLangevin(cdot="logm", lag=lag, dim=dim, variables=variables,
                                  n_keep=n_keep, seed=seed, progress=False,
                                  score_options={"shrinkage": shrinkage})
    return estimator.fit(data, score="gaussian")


def lim_operators(model: LangevinModel) -> xr.Dataset:
    """``L`` (the linear dynamical operator, per data time unit), ``Q`` (the noise covariance
    rate, ``2 Phi_S``) and ``C0`` (the covariance the model's Gaussian score was fitted to) of a
    model with a Gaussian score, in physical units over ``(feature_i, feature_j)``.
    ``L C0 + C0 L^T + Q = 0`` holds to rounding (reported as ``fdt_residual``)."""
    score = model.score
    if getattr(score, "method", None) != "gaussian":
        raise DataError("lim_operators needs a model with the Gaussian score (fitted with "
                        "score='gaussian', e.g. by xlangevin.lim); this model's score is "
                        f"{getattr(score, 'method', type(score).__name__)!r}")
    sp = model.space
    A = score.field.A.cpu().numpy()                      # -R^{-1}, standardized
    C0 = sp.matrix_to_physical(-np.linalg.inv(A))        # S R S
    Phi = model.Phi.values
    L = -Phi @ np.linalg.inv(C0)
    Q = 2.0 * model.Phi_S.values
    residual = np.linalg.norm(L @ C0 + C0 @ L.T + Q) / np.linalg.norm(Q)
    like = model.Phi
    out = xr.Dataset({"L": like.copy(data=L), "Q": like.copy(data=Q), "C0": like.copy(data=C0)})
    out["L"].attrs = {"long_name": "linear operator L = -Phi C0^{-1}",
                      "units": f"1 / ({model.attrs.get('time_units', 'time unit')})"}
    out["Q"].attrs = {"long_name": "noise covariance rate Q = 2 Phi_S",
                      "units": like.attrs.get("units", "")}
    out["C0"].attrs = {"long_name": "covariance of the data (the Gaussian score's)"}
    out.attrs = {"fdt_residual": float(residual), "cdot_estimator": model.cdot_estimator}
    return out
