r"""Polynomial log-density fitted by implicit score matching: a closed-form score for short records.

The log-density is a polynomial of linear coordinates ``u = Q x~`` of the standardized state,

    log p = theta . psi(u) + const,    psi = (u^a : 1 <= |a| <= degree),

an exponential family. Its implicit score-matching loss (Hyvärinen, "Estimation of
non-normalized statistical models by score matching", JMLR 6, 2005), taken in the whitened
principal coordinates ``z = P x~`` (:func:`~xlangevin.score.subspace.principal_whitening`;
``u = T z``, ``M = T T^T``),

    J(theta) = E[ |grad_z psi^T theta|^2 / 2 + Laplacian_z psi . theta ]
             = theta^T G theta / 2 + b . theta,
    G = E[grad_u psi M grad_u psi^T],   b = E[sum_a M_aa d^2 psi / d u_a^2],

is quadratic, so ``theta = -(G + lambda diag G)^{-1} b`` is one linear solve: no clustering, no
network, no noise scale (the Laplacian needs only ``M``'s diagonal because no monomial mixes
coordinates whose ``M`` entry is nonzero off the diagonal, below). The score is exact for a
polynomial potential of that degree (the Gaussian is ``degree = 2``, a double well or a tilted
quartic ``degree = 4``): ``s~(x~) = Q^T grad_u (theta . psi)(Q x~)``.

Which monomials: with ``cross_degree >= degree`` (default for ``d <= 4``) every monomial of
``z`` (``u = z``). Above, the monomials of ``z`` up to degree ``cross_degree`` (2 by default:
the Gaussian dependence) and the pure powers of higher degree of every principal coordinate
``z_j`` *and* every standardized feature ``x~_i`` (``u = (z, x~)``): a record of many correlated
stations gets each station's skewness and tails as well as the leading modes'.

The fitted density must be normalizable and must not grow again outside the data (a spurious
mode): if the free fit does, the monomials of top degree that mix coordinates are dropped and
the coefficients of the pure top powers are held at or below ``-floor``, for the smallest floor
of a geometric ladder that makes the density decay along every ray beyond the data (the least
bias); failing that, a lower degree is used, down to the Gaussian (with a warning).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, provenance
from ..data import DataError
from .model import ScoreModel, register_field
from .subspace import principal_whitening

__all__ = ["Polynomial", "PolynomialField", "monomial_exponents", "monomial_slots",
           "monomial_values", "polynomial_basis", "powers_table"]

#: rows processed at once when the moments G and b are accumulated
_CHUNK = 8192


def monomial_exponents(d: int, degree: int, cross_degree: int) -> np.ndarray:
    """Exponents ``a`` (rows, int) of the monomials ``z^a`` with ``1 <= |a| <= degree``, those
    with more than one nonzero exponent only up to ``|a| <= cross_degree``; ordered by degree."""
    rows = []
    for total in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(d), total):
            a = np.bincount(combo, minlength=d)
            if np.count_nonzero(a) == 1 or total <= cross_degree:
                rows.append(a)
    return np.array(rows, dtype=np.int64).reshape(-1, d)


def powers_table(z, degree: int, xp):
    """``z_j^p`` for ``p = 0..degree``: array (n, d, degree + 1)."""
    out = [xp.ones_like(z)]
    for _ in range(degree):
        out.append(out[-1] * z)
    return xp.stack(out, axis=-1) if xp is np else torch.stack(out, dim=-1)


def monomial_slots(exponents):
    """``(coordinate, power, keep)``: index arrays (m, slots) of the nonzero factors of each
    monomial (padded with power 0), so that a monomial is a product over a few slots, not all
    columns; ``keep`` is False where an exponent is negative (the derivative of a lower power:
    the monomial is 0)."""
    keep = (exponents >= 0).all(1)
    e = np.maximum(exponents, 0)
    slots = max(1, int((e > 0).sum(1).max(initial=1)))
    coordinate = np.zeros((len(e), slots), dtype=np.int64)
    power = np.zeros((len(e), slots), dtype=np.int64)
    for row, a in enumerate(e):
        nonzero = np.flatnonzero(a)
        coordinate[row, :len(nonzero)] = nonzero
        power[row, :len(nonzero)] = a[nonzero]
    return coordinate, power, keep


def _monomials(powers, exponents):
    """``prod_j u_j^{a_j}`` for every row ``a`` of ``exponents`` (negative exponents give 0):
    (n, m) from the (n, k, p) table of powers (numpy)."""
    coordinate, power, keep = monomial_slots(exponents)
    return monomial_values(powers, coordinate, power) * keep


def monomial_values(powers, coordinate, power):
    """The monomials given by :func:`monomial_slots` from a table of powers (n, k, p):
    ``prod_s powers[:, coordinate[m, s], power[m, s]]`` (numpy or torch alike), (n, m)."""
    return powers[:, coordinate, power].prod(-1)


def _gradient_features(powers, exponents):
    """``d psi_m / d u_k`` as (n, m, k) (numpy, for the fit)."""
    d = exponents.shape[1]
    return np.stack([exponents[:, k] * _monomials(powers, exponents - np.eye(d, dtype=int)[k])
                     for k in range(d)], axis=-1)


def _laplacian_features(powers, exponents, weights):
    """``sum_k weights_k d^2 psi_m / d u_k^2`` as (n, m)."""
    d = exponents.shape[1]
    return sum(weights[k] * exponents[:, k] * (exponents[:, k] - 1)
               * _monomials(powers, exponents - 2 * np.eye(d, dtype=int)[k]) for k in range(d))


def score_matching_moments(U, exponents, M):
    """``G = E[grad_u psi M grad_u psi^T]`` and ``b = E[sum_a M_aa d_aa psi]`` over the rows
    of ``U`` (coordinates ``u``), accumulated in chunks of :data:`_CHUNK` rows."""
    m = len(exponents)
    degree = int(exponents.sum(1).max())
    G, b = np.zeros((m, m)), np.zeros(m)
    for start in range(0, len(U), _CHUNK):
        powers = powers_table(U[start:start + _CHUNK], degree, np)
        grad = _gradient_features(powers, exponents)
        G += np.tensordot(grad @ M, grad, axes=([0, 2], [0, 2]))
        b += _laplacian_features(powers, exponents, np.diag(M)).sum(0)
    return G / len(U), b / len(U)


def polynomial_basis(P, degree: int, cross_degree: int):
    """``(T, exponents)``: the coordinates ``u = T z`` of the whitened ``z = P x~`` and the
    exponents of the monomials of ``u`` (module docstring: ``u = z`` when every monomial is
    kept or ``d = 1``, else ``u = (z, x~)`` with pure powers of ``x~`` above ``cross_degree``)."""
    d = P.shape[0]
    exponents = monomial_exponents(d, degree, cross_degree)
    if cross_degree >= degree or d == 1:
        return np.eye(d), exponents
    T = np.vstack([np.eye(d), np.linalg.inv(P)])
    pure = [p * np.eye(d, dtype=np.int64)[i] for p in range(cross_degree + 1, degree + 1)
            for i in range(d)]
    exponents = np.vstack([np.hstack([exponents, np.zeros_like(exponents)]),
                           np.hstack([np.zeros((len(pure), d), np.int64), np.array(pure)])])
    return T, exponents


def _directions(d: int, n_random: int, seed: int = 0) -> np.ndarray:
    """Unit vectors: the axes both ways and ``n_random`` random ones."""
    U = np.concatenate([np.eye(d), -np.eye(d),
                        np.random.default_rng(seed).normal(size=(n_random, d))])
    return U / np.linalg.norm(U, axis=1, keepdims=True)


def log_density(theta, exponents, U) -> np.ndarray:
    """``theta . psi(u)`` at the rows of ``U`` (the log-density up to its constant)."""
    degree = int(exponents.sum(1).max())
    return _monomials(powers_table(U, degree, np), exponents) @ theta


def decays_outward(theta, exponents, T, r0: float, n_directions: int = 1024) -> bool:
    """Whether ``theta . psi(T z)`` is normalizable and decreases along every ray of ``z``
    beyond radius ``r0`` (no spurious mode outside the data): its top-degree part is negative
    on every direction, and it decreases on a geometric grid ``r0 <= r <= 100 r0``."""
    Z = _directions(T.shape[1], n_directions)
    top = exponents.sum(1) == exponents.sum(1).max()
    if log_density(theta[top], exponents[top], Z @ T.T).max() >= 0:
        return False
    radii = r0 * np.geomspace(1.0, 100.0, 48)
    values = log_density(theta, exponents, (radii[:, None, None] * Z).reshape(-1, Z.shape[1])
                         @ T.T)
    return bool(np.all(np.diff(values.reshape(len(radii), len(Z)), axis=0) < 0))


@register_field
class PolynomialField(nn.Module):
    """``s~(x~) = Q^T grad_u (theta . psi)(u)``, ``u = Q x~`` (module docstring; float64)."""

    def __init__(self, Q, exponents, theta):
        super().__init__()
        self.register_buffer("Q", torch.tensor(np.asarray(Q, dtype=np.float64)))
        self.register_buffer("theta", torch.tensor(np.asarray(theta, dtype=np.float64)))
        exponents = np.asarray(exponents, dtype=np.int64)
        self.register_buffer("exponents", torch.tensor(exponents))
        self.degree = int(exponents.sum(1).max())
        d = exponents.shape[1]
        # d/du_k (theta . psi) = sum over a with a_k >= 1 of theta_a a_k u^(a - e_k)
        for k in range(d):
            rows = np.flatnonzero(exponents[:, k] >= 1)
            coordinate, power, _ = monomial_slots(exponents[rows] - np.eye(d, dtype=np.int64)[k])
            self.register_buffer(f"coordinate{k}", torch.tensor(coordinate))
            self.register_buffer(f"power{k}", torch.tensor(power))
            self.register_buffer(f"coef{k}", torch.tensor(np.asarray(theta)[rows]
                                                          * exponents[rows, k]))

    def forward(self, x):
        u = x.to(self.Q.dtype) @ self.Q.T
        powers = powers_table(u, self.degree, torch)
        grad = torch.stack([monomial_values(powers, getattr(self, f"coordinate{k}"),
                                            getattr(self, f"power{k}")) @ getattr(self, f"coef{k}")
                            for k in range(u.shape[1])], dim=1)
        return (grad @ self.Q).to(x.dtype)

    def to_arrays(self):
        return {}, {"Q": self.Q.cpu().numpy(), "theta": self.theta.cpu().numpy(),
                    "exponents": self.exponents.cpu().numpy()}

    @classmethod
    def from_arrays(cls, config, arrays):
        return cls(arrays["Q"], arrays["exponents"], arrays["theta"])


class Polynomial(Estimator):
    """Score of a polynomial log-density by implicit score matching (module docstring).

    Parameters
    ----------
    degree : even degree of the log-density polynomial (2: the Gaussian; default 4).
    cross_degree : highest degree of the monomials that mix coordinates; default: ``degree``
        for up to 4 features, 2 above (Gaussian dependence, non-Gaussian principal marginals).
    ridge : Tikhonov weight ``lambda`` relative to the diagonal of ``G`` (default 1e-6).
    dim, variables : data-layer options for xarray input.
    progress : unused (the fit is one linear solve); accepted like every score estimator's.

    The fit is deterministic (no random draws), so the estimator has no ``seed``.
    """

    degree: int = 4
    cross_degree: int | None = None
    ridge: float = 1e-6
    dim: str = "time"
    variables: object = None
    progress: bool = True

    _constraints = {"degree": Interval(2, 12, integer=True, text="an even integer in [2, 12]"),
                    "cross_degree": Interval(1, 12, integer=True, optional=True),
                    "ridge": Interval(0, None)}

    def _check(self) -> None:
        if self.degree % 2:
            raise ValueError(f"degree must be even (an odd top degree is never normalizable), "
                             f"got {self.degree}")

    def _fit(self, features) -> ScoreModel:
        X = np.asarray(features.in_memory().X, dtype=np.float64)
        n, d = X.shape
        P = principal_whitening(X)
        Z = X @ P.T
        r0 = float(np.quantile(np.linalg.norm(Z, axis=1), 0.99))
        cross = self.cross_degree if self.cross_degree is not None else (
            self.degree if d <= 4 else 2)
        for degree in range(self.degree, 0, -2):
            fit = self._fit_degree(Z, P, degree, min(cross, degree), r0)
            if fit is not None:
                break
        else:
            raise DataError(f"no polynomial log-density of degree <= {self.degree} fits these "
                            f"{n} samples (fewer samples than terms, or degenerate data); use "
                            "score='gaussian'")
        T, exponents, theta, floor = fit
        if degree < self.degree:
            warnings.warn(f"no degree-{self.degree} polynomial log-density that decays outside "
                          f"the data fits these {n} samples; using degree {degree}",
                          stacklevel=4)
        mixed = exponents[(exponents > 0).sum(1) > 1].sum(1)
        attrs = provenance(self, n_samples=int(n), degree_used=int(degree),
                           cross_degree_used=int(mixed.max(initial=1)),
                           n_terms=int(len(exponents)), top_coefficient_floor=float(floor))
        return ScoreModel(PolynomialField(T @ P, exponents, theta), features.space, 0.0,
                          "polynomial", attrs=attrs)

    def _fit_degree(self, Z, P, degree, cross, r0):
        """``(T, exponents, theta, floor)`` of the score-matching fit of one degree that
        decays outside radius ``r0``, or None (module docstring): first free; else without
        top-degree mixed monomials and with the pure top powers held at or below ``-floor``."""
        T, exponents = polynomial_basis(P, degree, cross)
        if len(exponents) >= len(Z):
            return None
        G, b = self._moments(Z, T, exponents)
        theta = _constrained_solve(G, b, {})
        if degree == 2 or decays_outward(theta, exponents, T, r0):
            return T, exponents, theta, 0.0
        T, exponents = polynomial_basis(P, degree, min(cross, degree - 1))
        G, b = self._moments(Z, T, exponents)
        top = np.flatnonzero(exponents.sum(1) == degree)
        for floor in np.geomspace(1e-4, 1.0, 13):
            theta = _constrained_solve(G, b, dict.fromkeys(top, -floor))
            if decays_outward(theta, exponents, T, r0):
                return T, exponents, theta, floor
        return None

    def _moments(self, Z, T, exponents):
        G, b = score_matching_moments(Z @ T.T, exponents, T @ T.T)
        return G + self.ridge * np.diag(np.diag(G)), b


def _constrained_solve(G, b, upper: dict) -> np.ndarray:
    """Minimizer of ``theta^T G theta / 2 + b . theta`` with ``theta_i <= upper[i]``: the
    active set (coefficients held at their bound) grows until the free solution respects every
    bound."""
    held = {}
    while True:
        free = np.array([i for i in range(len(b)) if i not in held], dtype=int)
        fixed = np.array(sorted(held), dtype=int)
        theta = np.zeros(len(b))
        theta[fixed] = [held[i] for i in fixed]
        rhs = -b[free] - G[np.ix_(free, fixed)] @ theta[fixed]
        try:
            theta[free] = np.linalg.solve(G[np.ix_(free, free)], rhs)
        except np.linalg.LinAlgError:
            theta[free] = np.nan
        if not np.all(np.isfinite(theta)):
            raise DataError("the score-matching system of the polynomial score is singular "
                            "(constant or duplicated features?); give ridge > 0 or drop them")
        over = [i for i in upper if i not in held and theta[i] > upper[i]]
        if not over:
            return theta
        held.update((i, upper[i]) for i in over)
