r"""A current velocity that keeps the data's density invariant by construction.

Every divergence-free probability current of a density ``p`` can be written ``j = div(p A)``
with an antisymmetric matrix field ``A(x)`` (``(div M)_i = sum_j d_j M_ij``), so

    v(x) = j / p = A(x) s(x) + div A(x),        div(p v) = sum_ij d_i d_j (p A_ij) = 0,

whatever ``A``. A constant ``A`` is the constant-mobility model's ``Phi_A s``. Here ``A`` is a
polynomial of the whitened principal coordinates ``z = P x~`` of the data,
``A(x) = sum_k phi_k(z) A_k`` (``phi_k`` the monomials of degree ``<= degree``, the constant
included), hence

    v(x) = sum_k A_k (phi_k(z) s(x) + grad_x phi_k(z)),

linear in the antisymmetric coefficient matrices ``A_k``. They are fitted by least squares to the
central differences of the record, ``E[(x_{t+k} - x_{t-k}) / (2 k dt) | x_t = x] = v(x) +
O(k dt)`` (:func:`~xlangevin.dynamics.current.central_differences`; the reversible part of the
drift cancels), with the model's score ``s``. The rotation speed may then vary over state space
(a state-dependent ``Phi_A``), which a constant ``Phi_A`` cannot do, and the model
``dx = (Phi_S s + v) dt + sqrt(2) Sigma dW`` keeps ``p`` exactly, unlike a free-form ``v``.
The construction of ``j`` is the standard one for non-reversible samplers (e.g. Ma, Chen & Fox,
"A complete recipe for stochastic gradient MCMC", NeurIPS 2015).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from ..base import Estimator, Interval, Seed
from ..data import DataError
from ..score.polynomial import (monomial_exponents, monomial_slots, monomial_values,
                                powers_table)
from ..score.subspace import principal_whitening
from .current import central_differences

__all__ = ["StationaryCurrent", "PolynomialCurrentField"]

#: the default degree keeps at least this many equations per coefficient of ``A(x)``
EQUATIONS_PER_COEFFICIENT = 40


class PolynomialCurrentField:
    """``v~(x~, s~) = sum_k A_k (phi_k(z) s~ + grad phi_k)``, ``z = P x~`` (module docstring):
    standardized states and scores in, standardized velocity (per time unit of the data) out.
    ``diagnostics`` as for :class:`~xlangevin.dynamics.current.CurrentField`."""

    kind = "polynomial"

    def __init__(self, P, exponents, A, diagnostics: dict):
        self.P = torch.tensor(np.asarray(P, dtype=np.float64))
        self.exponents = np.asarray(exponents, dtype=np.int64)
        self.A = torch.tensor(np.asarray(A, dtype=np.float64))
        if not torch.allclose(self.A, -self.A.transpose(1, 2)):
            raise ValueError("the coefficient matrices A_k must be antisymmetric")
        self.diagnostics = dict(diagnostics)
        d = self.exponents.shape[1]
        self._degree = max(int(self.exponents.sum(1).max()), 1)
        self._slots = [torch.tensor(a) for a in monomial_slots(self.exponents)[:2]]
        # d phi / dz_k = a_k z^(a - e_k): the slots of the lowered exponents (clamped at 0,
        # where the factor a_k is 0 anyway) and the factors
        self._lowered = [[torch.tensor(a) for a in monomial_slots(
            np.maximum(self.exponents - np.eye(d, dtype=np.int64)[k], 0))[:2]]
            for k in range(d)]
        self._factor = torch.tensor(self.exponents, dtype=torch.float64)

    def terms(self, x, s):
        """``phi_k(z) s~ + grad phi_k`` (n, K, d) at states ``x`` with scores ``s`` (tensors,
        float64): ``v~ = sum_k A_k terms[:, k]``."""
        z = x.to(torch.float64) @ self.P.T
        powers = powers_table(z, self._degree, torch)
        phi = monomial_values(powers, *self._slots)                             # (n, K)
        grad_z = torch.stack([monomial_values(powers, *low) * self._factor[:, k]
                              for k, low in enumerate(self._lowered)], dim=-1)  # (n, K, d)
        return phi[:, :, None] * s.to(torch.float64)[:, None, :] + grad_z @ self.P

    def tensor(self, x, s):
        """``v~`` of a CPU tensor of states ``x`` with their scores ``s`` (dtype of ``x``)."""
        return torch.einsum("nkj,kij->ni", self.terms(x, s), self.A).to(x.dtype)

    def __call__(self, X, S):
        """``v~`` on standardized states ``X`` (n, d) with scores ``S`` (numpy, dtype kept)."""
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        return self.tensor(torch.tensor(X, dtype=torch.float64),
                           torch.tensor(S, dtype=torch.float64)).numpy().astype(dtype)

    def mlp_layers(self):
        """None: this field is not an MLP (the numba kernel cannot fold it)."""
        return None

    def to_arrays(self):
        return ({"kind": self.kind, "diagnostics": self.diagnostics},
                {"P": self.P.numpy(), "exponents": self.exponents, "A": self.A.numpy()})

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(arrays["P"], arrays["exponents"], arrays["A"], config["diagnostics"])

    def __repr__(self):
        dg = self.diagnostics
        return (f"PolynomialCurrentField(degree={dg.get('degree')}, terms={len(self.exponents)}, "
                f"lag={dg.get('lag')}, r2={dg.get('r2', float('nan')):.3f})")


class StationaryCurrent(Estimator):
    """Estimator of the density-preserving polynomial current velocity (module docstring).

    Parameters
    ----------
    degree : highest degree of the monomials ``phi_k`` of ``A(x)`` (0: a constant ``A``, the
        ``Phi_A s`` of the constant-mobility model). Default: the highest degree up to 2 that
        leaves at least :data:`EQUATIONS_PER_COEFFICIENT` equations (central differences times
        features) per coefficient (2 for a delay-embedded index of ~800 months, 1 for six
        such features).
    lag, order : half-width (samples) and extrapolation order of the central differences
        (:func:`~xlangevin.dynamics.current.central_differences`; default 1 and 1: the
        ``O(lag dt)`` bias removed, which matters for monthly records).
    ridge : Tikhonov weight relative to the diagonal of the normal equations (default 1e-8).
    seed, progress : accepted like every current estimator's (the fit is one linear solve).
    """

    degree: int | None = None
    lag: int = 1
    order: int = 1
    ridge: float = 1e-8
    seed: int | None = None
    progress: bool = True

    _constraints = {"degree": Interval(0, 6, integer=True, optional=True),
                    "lag": Interval(1, None, integer=True), "order": Interval(0, 4, integer=True),
                    "ridge": Interval(0, None), "seed": Seed()}

    def fit(self, X, bounds, dt: float, score_std, rotation=None) -> PolynomialCurrentField:
        """Fit on standardized states ``X`` (n, d) in sequences ``bounds`` sampled every
        ``dt``, with ``score_std`` the model's standardized score (a function of (n, d)
        arrays). ``rotation`` (d, d), if given, constrains the net rotation: the least-squares
        fit is solved subject to ``antisym <v(x) x^T> = antisym(rotation)`` over ``X`` (the
        estimator passes ``Phi_A V``, so that the model keeps the ``Cdot(0)`` estimate exactly,
        as the constant-mobility model does)."""
        self.validate()
        X = np.asarray(X, dtype=np.float64)
        d = X.shape[1]
        if d < 2:
            raise DataError("a current velocity needs at least 2 features (in 1-D every "
                            "stationary current vanishes)")
        mids, vels = central_differences(X, bounds, int(self.lag), float(dt), int(self.order))
        pairs = list(itertools.combinations(range(d), 2))
        degree = self.degree
        if degree is None:
            degree = max([q for q in (0, 1, 2) if _n_terms(d, q) * len(pairs)
                          * EQUATIONS_PER_COEFFICIENT <= mids.size], default=0)
        exponents = np.concatenate([np.zeros((1, d), dtype=np.int64),
                                    monomial_exponents(d, degree, degree)])
        n_coef = len(exponents) * len(pairs)
        if mids.size < 10 * n_coef:
            raise DataError(f"{mids.shape[0]} central differences for {n_coef} coefficients: "
                            "give a lower degree or a longer record")
        P = principal_whitening(X)
        basis = PolynomialCurrentField(P, exponents, np.zeros((len(exponents), d, d)), {})
        F = _design(basis, mids, score_std, pairs).reshape(-1, n_coef)
        y = vels.reshape(-1)
        normal = F.T @ F
        normal = normal + self.ridge * np.diag(np.diag(normal))
        if rotation is None:
            coef = np.linalg.solve(normal, F.T @ y)
        else:
            # KKT system of the least squares with the linear constraint B coef = t
            Xc = X - X.mean(0)
            moments = np.einsum("nic,nj->cij", _design(basis, X, score_std, pairs), Xc) / len(X)
            B = np.array([[0.5 * (m[i, j] - m[j, i]) for m in moments] for i, j in pairs])
            R = np.asarray(rotation, dtype=np.float64)
            t = np.array([0.5 * (R[i, j] - R[j, i]) for i, j in pairs])
            kkt = np.block([[normal, B.T], [B, np.zeros((len(pairs), len(pairs)))]])
            coef = np.linalg.solve(kkt, np.concatenate([F.T @ y, t]))[:n_coef]
        r2 = 1.0 - np.sum((y - F @ coef) ** 2) / np.sum((vels - vels.mean(0)) ** 2)
        A = np.zeros((len(exponents), d, d))
        for c, (k, (i, j)) in enumerate(itertools.product(range(len(exponents)), pairs)):
            A[k, i, j], A[k, j, i] = coef[c], -coef[c]
        return PolynomialCurrentField(P, exponents, A, {
            "kind": "polynomial", "degree": int(degree), "lag": int(self.lag),
            "order": int(self.order), "n_pairs": int(mids.shape[0]), "n_coefficients": n_coef,
            "rotation_constrained": rotation is not None, "r2": float(r2)})


def _n_terms(d: int, degree: int) -> int:
    """Monomials of degree <= ``degree`` in ``d`` variables, the constant included."""
    return math.comb(d + degree, degree)


def _design(basis, X, score_std, pairs) -> np.ndarray:
    """The least-squares design (n, d, n_coef): column ``(k, (i, j))`` is ``v~`` at ``X`` for
    ``A_k[i, j] = 1 = -A_k[j, i]`` alone, i.e. ``v_i = w_kj``, ``v_j = -w_ki`` with
    ``w = basis.terms``."""
    S = np.asarray(score_std(X), dtype=np.float64)
    w = basis.terms(torch.tensor(X), torch.tensor(S)).numpy()   # (n, K, d)
    F = np.zeros((X.shape[0], X.shape[1], w.shape[1], len(pairs)))
    for c, (i, j) in enumerate(pairs):
        F[:, i, :, c] = w[:, :, j]
        F[:, j, :, c] = -w[:, :, i]
    return F.reshape(X.shape[0], X.shape[1], -1)
