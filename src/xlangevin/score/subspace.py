r"""A score that is nonlinear along the leading principal directions and Gaussian across the rest.

Strongly correlated features (a delay embedding, neighbouring stations) concentrate the density
near a low-dimensional subspace: thin across most principal directions, where it is close to
Gaussian, and non-Gaussian (skewed, bimodal) along a few leading ones. With the whitened
principal coordinates ``z = P x~``, ``P = W^{-1/2} U^T`` (``R = U W U^T`` the correlation matrix,
eigenvalues in descending order), the model is

    p(x~) ∝ q(z_1..k) exp(-|z_{k+1..d}|^2 / 2),    s~(x~) = P^T (s_q(z_1..k), -z_{k+1..d}),

with ``s_q`` fitted by a nonlinear estimator (DSM, KGMM or GMM) on the ``k`` leading
coordinates only: the thin directions are as exact as the Gaussian score, and the smoothing of
the nonlinear estimator acts where the data are wide.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, OneOf, Options, Seed, provenance
from ..data import feature_data
from .dsm import DSM
from .gmm import GMM
from .kgmm import KGMM
from .model import (ScoreModel, field_dtype, field_from_arrays, field_to_arrays,
                    register_field)

__all__ = ["LeadingSubspace", "SubspaceField", "principal_whitening"]

_INNER = {"dsm": DSM, "kgmm": KGMM, "gmm": GMM}


def principal_whitening(X) -> np.ndarray:
    """``P = W^{-1/2} U^T`` (rows: the principal directions of standardized ``X``, largest
    variance first, scaled to unit variance)."""
    R = np.atleast_2d(np.cov(np.asarray(X, dtype=np.float64), rowvar=False, bias=True))
    w, U = np.linalg.eigh(R)
    order = np.argsort(w)[::-1]
    w, U = w[order], U[:, order]
    return (U / np.sqrt(np.maximum(w, 1e-12 * w[0]))).T


@register_field
class SubspaceField(nn.Module):
    """``s~(x~) = P^T (inner(z_1..k), -z_{k+1..d})`` with ``z = P x~`` (module docstring)."""

    def __init__(self, inner: nn.Module, P, k: int):
        super().__init__()
        self.inner = inner
        self.k = int(k)
        self.register_buffer("P", torch.tensor(np.asarray(P, dtype=np.float64)))

    def forward(self, x):
        P = self.P.to(x.dtype)
        z = x @ P.T
        lead = self.inner(z[:, :self.k].to(field_dtype(self.inner))).to(x.dtype)
        return torch.cat([lead, -z[:, self.k:]], dim=1) @ P

    def to_arrays(self):
        kind, config, arrays = field_to_arrays(self.inner)
        return ({"k": self.k, "inner_type": kind, "inner_config": config},
                {"P": self.P.cpu().numpy(), **{f"inner.{k}": v for k, v in arrays.items()}})

    @classmethod
    def from_arrays(cls, config, arrays):
        inner = {k[len("inner."):]: v for k, v in arrays.items() if k.startswith("inner.")}
        return cls(field_from_arrays(config["inner_type"], config["inner_config"], inner),
                   arrays["P"], config["k"])


class LeadingSubspace(Estimator):
    """Score nonlinear along ``n_components`` leading principal directions, Gaussian across
    the others (module docstring).

    Parameters
    ----------
    n_components : the number ``k`` of leading directions modelled nonlinearly.
    method : the estimator of the ``k``-dimensional score: ``"dsm"``, ``"kgmm"`` or ``"gmm"``.
    options : its options (e.g. ``{"sigma": 0.1}``; ``sigma`` in whitened units).
    dim, variables : data-layer options for xarray input.
    seed, progress : as for the estimators.

    The model reports ``sigma = 0``: its smoothing (``attrs["sigma_subspace"]``) acts in the
    whitened principal coordinates, not isotropically in the standardized units.
    """

    n_components: int = 1
    method: str = "dsm"
    options: dict | None = None
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = True

    _constraints = {"n_components": Interval(1, None, integer=True),
                    "method": OneOf(tuple(_INNER)), "options": Options(), "seed": Seed()}

    def _fit(self, features) -> ScoreModel:
        X = np.asarray(features.in_memory().X, dtype=np.float64)
        d = X.shape[1]
        k = min(int(self.n_components), d)
        P = principal_whitening(X)
        lead = feature_data((X @ P.T)[:, :k], standardize=False)
        params = {**(self.options or {}), "seed": self.seed, "progress": self.progress}
        inner = _INNER[self.method](**params).fit_features(lead)
        attrs = provenance(self, n_components=k, inner_method=self.method,
                           sigma_subspace=float(inner.sigma), n_samples=int(X.shape[0]))
        return ScoreModel(SubspaceField(inner.field, P, k), features.space, 0.0,
                          f"{self.method}+gaussian", attrs=attrs)
