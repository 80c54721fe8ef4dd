"""Plain Gaussian-mixture score (KGMM paper, Eq. 18): the baseline KGMM improves on.

With the samples ``y_i`` (standardized units) as centres of equal-weight Gaussians of width
``sigma``, the score of ``p_sigma = (1/n) sum_i N(y_i, sigma^2 I)`` is

    s(x) = sum_i w_i(x) (y_i - x) / sigma^2,    w_i ∝ exp(-|x - y_i|^2 / (2 sigma^2)).

It is exact for the empirical p_sigma, hence very noisy for small sigma. The sum over all samples
is evaluated in chunks (memory ~ ``chunk_elements`` doubles), so 10^5 samples are fine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, provenance
from .model import ScoreModel, register_field

__all__ = ["GMM", "GMMField"]


@register_field
class GMMField(nn.Module):
    """Standardized GMM score of fixed centres ``Y`` (float64 buffer)."""

    def __init__(self, Y, sigma: float, chunk_elements: int = 1 << 23):
        super().__init__()
        self.register_buffer("centres", torch.tensor(np.asarray(Y), dtype=torch.float64))
        self.sigma = float(sigma)
        self.chunk_elements = int(chunk_elements)

    def to_arrays(self):
        return ({"sigma": self.sigma, "chunk_elements": self.chunk_elements},
                {"centres": self.centres.cpu().numpy()})

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(arrays["centres"], config["sigma"], config["chunk_elements"])

    def forward(self, x):
        Y = self.centres
        rows = max(1, self.chunk_elements // Y.shape[0])
        out = []
        for start in range(0, x.shape[0], rows):
            xb = x[start:start + rows].to(Y.dtype)
            logits = -torch.cdist(xb, Y).pow(2) / (2 * self.sigma**2)
            w = torch.softmax(logits, dim=1)
            out.append(((w @ Y) - xb) / self.sigma**2)
        return torch.cat(out, dim=0).to(x.dtype)


class GMM(Estimator):
    """Plain GMM score estimator (see module docstring).

    Parameters
    ----------
    sigma : kernel width in standardized units.
    max_samples : use at most this many samples as centres (a random subset); None = all.
    dim, variables : data-layer options for xarray input.
    seed : seeds the subset choice.
    progress : unused (the fit has no long step); accepted like every score estimator's.
    """

    sigma: float = 0.05
    max_samples: int | None = None
    dim: str = "time"
    variables: object = None
    seed: int | None = None
    progress: bool = True

    _constraints = {"sigma": Interval(0, None, closed="neither"),
                    "max_samples": Interval(1, None, integer=True, optional=True)}

    def _fit(self, features) -> ScoreModel:
        Y = np.asarray(features.X)
        if self.max_samples is not None and Y.shape[0] > self.max_samples:
            rng = np.random.default_rng(self.seed)
            Y = Y[np.sort(rng.choice(Y.shape[0], self.max_samples, replace=False))]
        attrs = provenance(self, n_centres=int(Y.shape[0]))
        return ScoreModel(GMMField(Y, self.sigma), features.space, self.sigma, "gmm",
                          attrs=attrs, batch_size=4096)
