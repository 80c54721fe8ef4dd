"""Data near low-dimensional manifolds: the examples of the diffusion-map sampler paper.

Gottwald, Li, Marzouk & Reich, "Stable generative modeling using diffusion maps";
docs/diffmap.md. Plain (n, d) arrays of independent samples (no dynamics).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["noisy_arc", "hyper_semisphere"]


def noisy_arc(n: int, seed=None, r_std: float = 0.06, theta_mean: float = math.pi / 4,
              theta_std: float = 0.6) -> np.ndarray:
    """The paper's data near a 1-D manifold: ``r = 1 + 0.06 xi1``, ``theta = pi/4 + 0.6 xi2``,
    ``x = r (cos theta, sin theta)`` with independent standard normal ``xi1, xi2``; (n, 2)."""
    rng = np.random.default_rng(seed)
    r = 1.0 + r_std * rng.standard_normal(n)
    th = theta_mean + theta_std * rng.standard_normal(n)
    return np.stack([r * np.cos(th), r * np.sin(th)], axis=1)


def hyper_semisphere(n: int, d: int, alpha: float = 5.0, noise: float = 0.01,
                     seed=None) -> np.ndarray:
    """Noisy hyper-semisphere in R^d (our reading of the paper's example, docs/diffmap.md):
    ``omega`` uniform on the unit sphere S^{d-1} with the last coordinate made non-negative,
    radius ``r = 1 + U(0, noise)``, ``x = r omega``, then the last coordinate scaled by
    ``alpha``; (n, d)."""
    if d < 2:
        raise ValueError(f"d must be >= 2, got {d}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    w[:, -1] = np.abs(w[:, -1])
    x = w * (1.0 + noise * rng.random(n))[:, None]
    x[:, -1] *= alpha
    return x
