"""The Gaussian score: the baseline every nonlinear score must beat.

For data with mean ``m`` and covariance ``C`` the Gaussian density ``N(m, C)`` has the linear
score ``s(x) = -C^{-1} (x - m)``; in the standardized units of the FeatureSpace
(``x~ = S^{-1}(x - m)``) it is ``s~(x~) = -R^{-1} x~`` with ``R`` the correlation matrix. It
satisfies the Stein identity ``<s(x) x^T> = -I`` on its own data exactly, so with it the
effective Langevin model is linear: ``dx = -Phi C^{-1} (x - m) dt + sqrt(2) Sigma dW``. With the
matrix-log ``Cdot(0)`` (``cdot="logm"``) that model is the linear inverse model (LIM) of Penland
& Sardeshmukh, "The optimal growth of tropical sea surface temperature anomalies" (J. Climate
1995), and for one variable the AR(1)/OU model (:func:`xlangevin.dynamics.baselines.lim`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, provenance
from ..data import DataError
from .model import ScoreModel, register_field

__all__ = ["Gaussian", "LinearField"]


@register_field
class LinearField(nn.Module):
    """The standardized linear score ``s~(x~) = A x~`` (``A = -R^{-1}``, float64 buffer)."""

    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", torch.tensor(np.asarray(A, dtype=np.float64)))

    def to_arrays(self):
        return {}, {"A": self.A.cpu().numpy()}

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(arrays["A"])

    def forward(self, x):
        return (x.to(self.A.dtype) @ self.A.T).to(x.dtype)


class Gaussian(Estimator):
    """Score of the Gaussian fitted to the data (module docstring).

    Parameters
    ----------
    shrinkage : weight ``a`` in ``R_a = (1 - a) R + a I`` (Ledoit-Wolf-type regularization of
        the correlation matrix for short records of many variables; default 0).
    dim, variables : data-layer options for xarray input.
    progress : unused (the fit has no long step); accepted like every score estimator's.

    The fit is deterministic (no random draws), so the estimator has no ``seed``.
    """

    shrinkage: float = 0.0
    dim: str = "time"
    variables: object = None
    progress: bool = True

    _constraints = {"shrinkage": Interval(0, 1, closed="left")}

    def _fit(self, features) -> ScoreModel:
        X = np.asarray(features.in_memory().X, dtype=np.float64)
        n, d = X.shape
        R = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
        R = (1.0 - self.shrinkage) * R + self.shrinkage * np.eye(d)
        eig = np.linalg.eigvalsh(R)
        if eig.min() <= 1e-10 * eig.max():
            raise DataError(f"the data's correlation matrix is singular (smallest eigenvalue "
                            f"{eig.min():.2g}): some features are linear combinations of others "
                            "(drop them) or the record is shorter than the number of features; "
                            "or give shrinkage > 0")
        attrs = provenance(self, n_samples=int(n), shrinkage=float(self.shrinkage),
                           condition_number=float(eig.max() / eig.min()))
        return ScoreModel(LinearField(-np.linalg.inv(R)), features.space, 0.0, "gaussian",
                          attrs=attrs)
