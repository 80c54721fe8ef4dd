r"""Entropic optimal-transport distance between two sample sets (POT's Sinkhorn).

The diffusion-map paper (METHODS.md §7, paper 003) scores generated samples by the entropic OT
distance to reference samples with "1/lambda = 100". Here that is, precisely:

    W_reg(X, Y) = <gamma*, C>_F,   gamma* = argmin_{gamma in Pi(a, b)} <gamma, C>_F
                                                   + reg * sum_ij gamma_ij (log gamma_ij - 1)

with

* ``C_ij = |x_i - y_j|^2`` the SQUARED Euclidean cost, in the units of the arrays as given (no
  normalisation of C: ``reg`` is absolute, in the same squared units; ``reg = 1/lambda = 0.01``
  reproduces the paper's setting);
* uniform weights ``a = 1/n``, ``b = 1/m`` (or the weights passed);
* the returned value is the transport part only, ``<gamma*, C>`` (POT's ``sinkhorn2``), without
  the entropy term. It is not zero for ``X = Y`` (the entropic plan blurs over ~``sqrt(reg)``), so
  compare values computed with the same ``reg`` and similar sample sizes only.

Standardize or otherwise scale X and Y yourself before calling if you want ``reg`` relative to
the data's spread; the paper's examples use raw coordinates.

Solver: POT's log-domain Sinkhorn (``ot.bregman.sinkhorn_log``, torch backend: threaded
log-sum-exp) with epsilon scaling: ``reg`` is lowered geometrically (factor ``scaling``) from
``max C`` to the target, each stage warm-started from the previous dual potentials
(``f = reg log u`` carried over). Plain Sinkhorn at ``reg = 0.01`` with costs up to ~25 needs
~3000 iterations to a 1e-6 marginal error; the scaled solve needs ~1500 in all at 1e-6 and ~1100
at the default ``tol = 1e-5`` (the value then agrees with the 1e-6 solution to ~1e-3 relative,
far below the sampling noise of a 1000-point set; measured on the d = 3 hyper-semisphere).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["entropic_ot_distance"]


def _as_points(name, Z):
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim == 1:
        Z = Z[:, None]
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"{name} must be an array of shape (n_samples, n_features), got "
                         f"{np.shape(Z)}")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{name} has {np.count_nonzero(~np.isfinite(Z))} non-finite value(s)")
    return Z


def entropic_ot_distance(X, Y, reg: float = 0.01, *, a=None, b=None, tol: float = 1e-5,
                         max_iter: int = 20_000, scaling: float = 3.0) -> float:
    """Entropic OT distance ``<gamma*, C>`` with squared-Euclidean cost (module docstring).

    Parameters
    ----------
    X, Y : arrays (n, d) and (m, d) (a 1-D array is read as (n, 1)); raw units.
    reg : entropic regularization in squared data units (``1/lambda``; paper: 0.01).
    a, b : sample weights (default uniform); each is normalised to sum 1.
    tol : marginal violation (L1, POT's stopping rule) at which each stage stops.
    max_iter : iteration cap of the final stage (a warning says when it is reached).
    scaling : factor between successive regularizations of the epsilon scaling (> 1).

    Returns the transport cost as a float. Needs POT (``pip install pot``).
    """
    import ot  # POT, a declared dependency
    import torch

    X, Y = _as_points("X", X), _as_points("Y", Y)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features and Y has {Y.shape[1]}")
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a positive number, got {reg!r}")
    if not scaling > 1:
        raise ValueError(f"scaling must be > 1, got {scaling!r}")
    a = np.full(X.shape[0], 1.0 / X.shape[0]) if a is None else np.asarray(a, float)
    b = np.full(Y.shape[0], 1.0 / Y.shape[0]) if b is None else np.asarray(b, float)
    if a.shape != (X.shape[0],) or b.shape != (Y.shape[0],) or np.any(a < 0) or np.any(b < 0):
        raise ValueError("a and b must be non-negative weights, one per sample of X and Y")
    a, b = torch.from_numpy(a / a.sum()), torch.from_numpy(b / b.sum())
    C = torch.from_numpy(ot.dist(X, Y, metric="sqeuclidean"))
    n_stages = max(0, math.ceil(math.log(max(float(C.max()), reg) / reg, scaling)))
    regs = [reg * scaling ** k for k in range(n_stages, 0, -1)] + [float(reg)]
    potentials, previous = None, None
    for r in regs:
        warm = None if potentials is None else (potentials[0] * previous / r,
                                                potentials[1] * previous / r)
        final = r == regs[-1]
        plan, log = ot.bregman.sinkhorn_log(a, b, C, r, numItermax=int(max_iter) if final
                                            else 1000, stopThr=float(tol), log=True,
                                            warn=False, warmstart=warm)
        potentials, previous = (log["log_u"], log["log_v"]), r
    if not float(log["err"][-1]) < tol:
        warnings.warn(f"entropic_ot_distance: Sinkhorn stopped at max_iter={max_iter} with a "
                      f"marginal error {float(log['err'][-1]):.2g} > tol={tol:g} (reg={reg:g}); "
                      "the value is approximate", RuntimeWarning, stacklevel=2)
    return float((plan * C).sum())
