r"""Stein matrix and mobility ``Phi`` from ``Cdot(0)`` (METHODS.md §0, §4).

For ``dx = Phi s(x) dt + sqrt(2) Sigma dW`` with ``Sigma Sigma^T = Phi_S``:

    Cdot(0) = <(Phi s(x)) x^T> = Phi V,      V = <s(x) x^T>   (the Stein matrix),

hence ``Phi = Cdot(0) V^{-1}`` (a linear solve). For the exact score of the data density
``V = -I`` (integration by parts), so ``|V + I|`` is a self-consistency check of a score model.
``Phi_S = (Phi + Phi^T)/2`` must be positive semi-definite: if not, its eigenvalues are clipped
at ``eps`` and ``Phi`` is REBUILT as ``Phi_S + Phi_A`` (the antisymmetric part is kept, so the
invariant density of the model is unchanged); what was clipped is reported.
``Sigma`` = LOWER Cholesky factor of the (clipped) ``Phi_S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Mobility", "stein_matrix", "mobility_from_cdot"]


def stein_matrix(X, scores) -> np.ndarray:
    """``V = <s(x) x^T>`` (d, d) from samples ``X`` (n, d) and their scores ``s(X)`` (n, d).

    ``x`` is centred by its sample mean (``<s> = 0`` for an exact score, so this only removes
    sampling noise); ``V[i, j] = mean_t s_i(x_t) (x_t - m)_j``.
    """
    X = np.asarray(X, dtype=np.float64)
    S = np.asarray(scores, dtype=np.float64)
    if X.ndim != 2 or S.shape != X.shape:
        raise ValueError(f"X and scores must both have shape (n, d); got {X.shape} and {S.shape}")
    Xc = X - X.mean(axis=0)
    return S.T @ Xc / X.shape[0]


@dataclass(frozen=True, repr=False)
class Mobility:
    """Result of :func:`mobility_from_cdot`.

    ``Phi = Phi_S + Phi_A`` (after clipping), ``Sigma`` lower Cholesky of ``Phi_S``;
    ``Phi_raw = cdot V^{-1}`` before clipping; ``clip`` reports ``eigenvalues_before``,
    ``eigenvalues_after``, ``n_clipped``, ``floor`` and ``shift_norm`` (``|Phi_S - Phi_S_raw|_F``).
    """

    Phi: np.ndarray
    Phi_S: np.ndarray
    Phi_A: np.ndarray
    Sigma: np.ndarray
    V: np.ndarray
    cdot: np.ndarray
    Phi_raw: np.ndarray
    clip: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Mobility(d={self.Phi.shape[0]}, n_clipped={self.clip.get('n_clipped')}, "
                f"eig(Phi_S)={np.array2string(self.clip.get('eigenvalues_after'), precision=4)})")


def mobility_from_cdot(cdot, V=None, eps: float = 1e-6) -> Mobility:
    """``Phi = cdot V^{-1}``, its parts, PSD projection of ``Phi_S`` and ``Sigma``.

    Parameters
    ----------
    cdot : (d, d) ``Cdot(0)`` (any estimator of :mod:`xlangevin.dynamics.cdot`).
    V : (d, d) Stein matrix ``<s x^T>`` in the same units; default ``-I``.
    eps : eigenvalues of ``Phi_S`` below ``eps * max(|eigenvalue|)`` are raised to that floor
        (relative, so that the result does not depend on the units); ``Phi`` is rebuilt as
        ``Phi_S(clipped) + Phi_A``.
    """
    cdot = np.asarray(cdot, dtype=np.float64)
    if cdot.ndim != 2 or cdot.shape[0] != cdot.shape[1]:
        raise ValueError(f"cdot must be a square (d, d) matrix, got shape {cdot.shape}")
    d = cdot.shape[0]
    V = -np.eye(d) if V is None else np.asarray(V, dtype=np.float64)
    if V.shape != (d, d):
        raise ValueError(f"V must have shape ({d}, {d}), got {V.shape}")
    if not (np.all(np.isfinite(cdot)) and np.all(np.isfinite(V))):
        raise ValueError("cdot and V must be finite")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    Phi_raw = np.linalg.solve(V.T, cdot.T).T            # Phi V = cdot
    S = 0.5 * (Phi_raw + Phi_raw.T)
    A = 0.5 * (Phi_raw - Phi_raw.T)
    w, U = np.linalg.eigh(S)
    floor = eps * max(np.max(np.abs(w)), np.finfo(float).tiny)
    low = w < floor
    w2 = np.where(low, floor, w)
    S2 = (U * w2) @ U.T if np.any(low) else S
    S2 = 0.5 * (S2 + S2.T)
    Sigma = np.linalg.cholesky(S2)
    clip = {"eigenvalues_before": w, "eigenvalues_after": w2, "n_clipped": int(low.sum()),
            "floor": float(floor), "shift_norm": float(np.linalg.norm(S2 - S))}
    return Mobility(Phi=S2 + A, Phi_S=S2, Phi_A=A, Sigma=Sigma, V=V, cdot=cdot,
                    Phi_raw=Phi_raw, clip=clip)
