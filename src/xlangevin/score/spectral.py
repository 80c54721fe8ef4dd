r"""Spectral score matching: the time-dependent score of a forward diffusion from one moment pass.

Forward process (on coordinates ``y``, :mod:`.spectral_basis`): ``dY = -grad V(Y) dt + sqrt(2)
dW``, ``Y_0 ~ rho_0`` (the data), generator ``L f = Laplacian f - grad V . grad f``. With ``L
phi_m = Lambda_m phi_m``, the law ``rho_t`` of ``Y_t`` has

    E_{rho_t}[phi_m] = exp(Lambda_m t) E_{rho_0}[phi_m],

so one pass over the data gives the moments at every time (Khoo, Peng & Oster, "Score based
learning in scientific computing", slides 2025). Each score component is expanded as ``s_k(t,
y) = sum_a c_ka(t) phi_a(y)`` and minimizes the implicit score-matching loss (Hyvärinen 2005)

    J_k(c) = E_{rho_t}[ s_k^2 / 2 + d_k s_k ] = c^T G(t) c / 2 + b_k(t) . c,
    G_ab(t) = E_{rho_t}[phi_a phi_b] = sum_m mu_ab^m exp(Lambda_m t) M_m,
    b_ka(t) = E_{rho_t}[d_k phi_a] = sum_m nu_ka^m exp(Lambda_m t) M_m,

(``phi_a phi_b = sum_m mu_ab^m phi_m``, ``d_k phi_a = sum_m nu_ka^m phi_m``, ``M_m = E_{rho_0}
[phi_m]``), so ``c_k(t) = -G(t)^{-1} b_k(t)``: one symmetric solve per time of the grid. No factor
2 appears in ``J`` (it is ``E|s - grad log rho_t|^2 / 2`` up to a constant); the factor 2 is in
the reverse-time SDE (:mod:`.time_model`).

Basis (the cluster ansatz of the slides): tensor products of 1-D eigenfunctions with at most
``interaction`` non-constant factors, each of index ``1..order`` (Fourier: frequency ``<= order``),
and with ``band``, only factors on coordinates at most ``band`` apart (the local variant).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch
from torch import nn

from ..base import Estimator, Interval, OneOf, provenance
from ..data import DataError
from .model import ScoreModel, register_field
from .spectral_basis import Fourier, Hermite, MeanField, family_from_arrays, union_moments
from .time_model import TimeScoreModel

__all__ = ["SpectralScore", "SpectralStationary", "SpectralTimeField", "SpectralSystem",
           "cluster_blocks", "cluster_basis", "needed_ranges", "solve_coefficients"]


def cluster_blocks(d: int, top: int, interaction: int, band: int | None = None,
                   total: int | None = None) -> list:
    """The cluster basis as blocks ``(S, L)``: ``S`` a tuple of at most ``interaction``
    coordinates whose spread is at most ``band`` (None: any), ``L`` (k, |S|) the 1-D indices
    (``1..top``, summing to at most ``total``; None: any) of the products on ``S`` (the first
    block, ``S = ()``, is the constant)."""
    blocks = []
    for size in range(0, min(interaction, d) + 1):
        for S in itertools.combinations(range(d), size):
            if band is not None and size and S[-1] - S[0] > band:
                continue
            L = np.array(list(itertools.product(range(1, top + 1), repeat=size)),
                         dtype=np.int64).reshape(-1 if size else 1, size)
            if total is not None:
                L = L[L.sum(1) <= total]
            if len(L):
                blocks.append((S, L))
    return blocks


def cluster_basis(blocks, d: int) -> np.ndarray:
    """Multi-indices (N, d) of the basis functions of ``blocks``, block after block."""
    rows = []
    for S, L in blocks:
        B = np.zeros((len(L), d), dtype=np.int64)
        B[:, list(S)] = L
        rows.append(B)
    return np.vstack(rows)


def needed_ranges(blocks, size: int, top: int) -> dict:
    """``{U: per-axis index arrays}``: the moments the system reads. A coordinate shared by
    the two blocks of a product (or differentiated) needs every index ``0..size-1``; one in a
    single block only its own indices ``1..top`` (so the moments over 4 coordinates of two
    disjoint pairs cost ``top^4``, not ``size^4``)."""
    need = {}
    for S, _ in blocks:
        need.setdefault(S, set()).update(range(len(S)))
        for S2, _ in blocks:
            U = tuple(sorted(set(S) | set(S2)))
            need.setdefault(U, set()).update(U.index(i) for i in set(S) & set(S2))
    full, inner = np.arange(size), np.arange(1, top + 1)
    return {U: [full if q in f else inner for q in range(len(U))] for U, f in need.items()}


def _grid_rows(L, top):
    """Positions of the rows of ``L`` in the C-ordered full grid ``{1..top}^|S|``."""
    return ((L - 1) * top ** np.arange(L.shape[1] - 1, -1, -1)).sum(1)


class SpectralSystem:
    """``G(t)`` and ``b(t)`` of the score-matching problem from the moment tensors ``M_U``
    (module docstring), block by block: for a pair of blocks on ``S, S'`` the moments over
    ``U = S | S'`` contracted with the 1-D product table on the shared coordinates (and read at
    ``m_i = a_i`` on the others); the divergence of block ``S`` in direction ``k in S``
    contracts ``M_S`` with the derivative table on ``k``."""

    def __init__(self, blocks, P, D, moments, rates, top):
        self.blocks, self.P, self.D, self.top = blocks, P, D, top
        self.moments, self.rates = moments, rates
        self.offsets = np.cumsum([0] + [len(L) for _, L in blocks])

    def _at(self, U, times):
        """``M_U(t) = M_U(0) exp(Lambda_U t)``: (T,) + (size,)*|U|."""
        M = self.moments[U]
        return M[None] * np.exp(np.multiply.outer(times, self.rates[U]))

    def gram(self, times):
        N = self.offsets[-1]
        G = np.zeros((len(times), N, N))
        for i, (S, L) in enumerate(self.blocks):
            for j in range(i, len(self.blocks)):
                S2, L2 = self.blocks[j]
                full = self._block(S, S2, times)
                block = full[:, _grid_rows(L, self.top)][:, :, _grid_rows(L2, self.top)]
                G[:, self.offsets[i]:self.offsets[i + 1], self.offsets[j]:self.offsets[j + 1]] \
                    = block
                G[:, self.offsets[j]:self.offsets[j + 1], self.offsets[i]:self.offsets[i + 1]] \
                    = block.transpose(0, 2, 1)
        return G

    def _block(self, S, S2, times):
        U = tuple(sorted(set(S) | set(S2)))
        M = self._at(U, times)
        letters = iter("abcdefghijklmnopqrsuvwxyzABCDEFGHIJKLMNOPQRSUVWXYZ")
        m = {i: next(letters) for i in U}
        out_a, out_b, operands, subs = {}, {}, [], []
        cut = [slice(None)]
        for i in U:
            if i in S and i in S2:
                out_a[i], out_b[i] = next(letters), next(letters)
                operands.append(self.P[i][1:self.top + 1, 1:self.top + 1])
                subs.append(out_a[i] + out_b[i] + m[i])
                cut.append(slice(None))
            else:
                (out_a if i in S else out_b)[i] = m[i]
                cut.append(slice(1, self.top + 1))
        spec = ("T" + "".join(m[i] for i in U) + "".join("," + s for s in subs) + "->T"
                + "".join(out_a[i] for i in S) + "".join(out_b[i] for i in S2))
        full = np.einsum(spec, M[tuple(cut)], *operands, optimize=True)
        return full.reshape(len(times), self.top ** len(S), self.top ** len(S2))

    def divergence(self, times, d):
        """``b[t, a, k] = E_{rho_t}[d_k phi_a]`` (T, N, d)."""
        b = np.zeros((len(times), self.offsets[-1], d))
        for i, (S, L) in enumerate(self.blocks):
            M = self._at(S, times)
            rows = _grid_rows(L, self.top)
            for pos, k in enumerate(S):
                cut = [slice(None)] + [slice(None) if q == pos else slice(1, self.top + 1)
                                       for q in range(len(S))]
                part = np.moveaxis(M[tuple(cut)], pos + 1, -1) @ self.D[k][1:self.top + 1].T
                part = np.moveaxis(part, -1, pos + 1).reshape(len(times), -1)
                b[:, self.offsets[i]:self.offsets[i + 1], k] = part[:, rows]
        return b


def solve_coefficients(G, b, rcond: float):
    """``c = -(G + delta I)^{-1} b`` for a stack of Gram matrices ``G`` (T, N, N) and right-hand
    sides ``b`` (T, N, d). ``G[0]`` (``t = 0``, the data: the worst conditioned; later ones
    tend to the identity of the orthonormal eigenfunctions) sets ``delta``: 0 when its
    smallest eigenvalue is at least ``rcond`` times its largest, else the lift to that ratio
    (to ``|lambda_min|`` when ``G[0]`` is indefinite).
    Returns ``(c, delta, cond)`` (``cond``: condition number of ``G[0]`` before the lift)."""
    eig = np.linalg.eigvalsh(G[0])
    top = eig[-1]
    cond = np.inf if eig[0] <= 0 else top / eig[0]
    # an indefinite G (truncated product tables of the mean-field basis) is lifted until its
    # smallest eigenvalue is |lambda_min|, not ~0 (which would blow the coefficients up)
    delta = max(0.0, rcond * top - eig[0]) if eig[0] >= 0 else rcond * top - 2 * eig[0]
    N = G.shape[-1]
    c = -np.linalg.solve(G + delta * np.eye(N), b)
    return c, delta, cond


@register_field
class SpectralTimeField(nn.Module):
    """``s_y(t, y) = sum_a c_a(t) phi_a(y)`` with ``c`` linear in ``t`` between the grid times
    (beyond the grid: the last coefficients); float64 buffers."""

    def __init__(self, family, basis, times, coef):
        super().__init__()
        self.family = family
        self.register_buffer("basis", torch.as_tensor(np.asarray(basis, dtype=np.int64)))
        self.register_buffer("times", torch.as_tensor(np.asarray(times, dtype=np.float64)))
        self.register_buffer("coef", torch.as_tensor(np.asarray(coef, dtype=np.float64)))
        self.top = int(np.max(basis, initial=0))
        self._grid = np.asarray(times, dtype=np.float64)     # plain copy (usable under vmap)

    def coefficients(self, t: float) -> torch.Tensor:
        times = self._grid
        t = float(np.clip(t, times[0], times[-1]))
        j = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
        w = (t - times[j]) / (times[j + 1] - times[j])
        return (1 - w) * self.coef[j] + w * self.coef[j + 1]

    def forward(self, t, y):
        y64 = y.to(torch.float64)
        vals, _ = self.family.values(y64, self.top, xp=torch)
        d = y.shape[-1]
        phi = vals[:, torch.arange(d, device=y.device), self.basis].prod(-1)   # (n, N)
        return (phi @ self.coefficients(t)).to(y.dtype)

    def to_arrays(self):
        config, arrays = self.family.to_arrays()
        return {"family": config}, {**{f"family_{k}": v for k, v in arrays.items()},
                                    "basis": self.basis.cpu().numpy(),
                                    "times": self.times.cpu().numpy(),
                                    "coef": self.coef.cpu().numpy()}

    @classmethod
    def from_arrays(cls, config, arrays):
        family = family_from_arrays(config["family"], {k[7:]: v for k, v in arrays.items()
                                                       if k.startswith("family_")})
        return cls(family, arrays["basis"], arrays["times"], arrays["coef"])


class SpectralScore(Estimator):
    """Time-dependent score by spectral score matching (module docstring).

    Parameters
    ----------
    basis : "hermite" (OU forward process ``V = alpha |y|^2`` on the standardized state),
        "fourier" (Brownian motion on a periodic box; needs ``box``) or "mean-field" (separable
        maximum-entropy potential fitted to the per-coordinate moments; numerical
        eigenfunctions).
    order : highest 1-D index (Hermite, mean-field degree) or frequency (Fourier).
    interaction : at most this many non-constant factors per basis function (default: all
        coordinates, the full tensor basis).
    band : factors only on coordinates at most ``band`` apart (local cluster basis); None: any.
    total_order : cap on the sum of the 1-D orders of a product (a total-degree basis: fewer,
        better determined functions than the full tensor product); None: no cap.
    alpha : Hermite potential ``alpha |y|^2`` (0.5: the standard normal, matching standardized
        data).
    box : Fourier: ``(low, high)`` of the periodic features in physical units (scalars or one
        pair per feature).
    moments : mean-field: number of moments of the maximum-entropy densities (even).
    n_poly : mean-field: Galerkin polynomials per coordinate.
    horizon : final time ``T`` of the forward process; default: the slowest mode decayed to
        ``1e-4`` (``T = log(1e4) / |lambda_1|``).
    n_times : grid times (0 and geometric spacing from ``T/1000`` to ``T``).
    rcond : smallest eigenvalue of the Gram matrix relative to the largest before it is
        regularized (with a warning).
    max_basis : refuse bases larger than this (the Gram matrices are ``n_times x N x N``).
    dim, variables : data-layer options for xarray input.
    progress : unused (the fit has no long step); accepted like every score estimator's.

    The fit draws no random numbers (no ``seed``).
    """

    basis: str = "hermite"
    order: int = 4
    interaction: int | None = None
    band: int | None = None
    total_order: int | None = None
    alpha: float = 0.5
    box: object = None
    moments: int = 4
    n_poly: int = 40
    horizon: float | None = None
    n_times: int = 64
    rcond: float = 1e-10
    max_basis: int = 5000
    dim: str = "time"
    variables: object = None
    progress: bool = True

    _constraints = {"basis": OneOf(("hermite", "fourier", "mean-field")),
                    "order": Interval(1, 500, integer=True),
                    "interaction": Interval(1, None, integer=True, optional=True),
                    "band": Interval(0, None, integer=True, optional=True),
                    "total_order": Interval(1, None, integer=True, optional=True),
                    "alpha": Interval(0, None, closed="neither"),
                    "moments": Interval(2, 12, integer=True),
                    "n_poly": Interval(4, 200, integer=True),
                    "horizon": Interval(0, None, closed="neither", optional=True),
                    "n_times": Interval(2, 100000, integer=True),
                    "rcond": Interval(0, 1),
                    "max_basis": Interval(1, None, integer=True)}

    def _check(self) -> None:
        if self.basis == "hermite" and self.order > 150:
            raise ValueError(f"order must be at most 150 for the Hermite basis (its product "
                             f"table comes from a Gauss-Hermite rule of ~2 order nodes), got "
                             f"{self.order}")
        if self.moments % 2:
            raise ValueError(f"moments must be even (an odd top moment has no maximum-entropy "
                             f"density), got {self.moments}")
        if self.basis == "mean-field" and self.order >= self.n_poly:
            raise ValueError(f"order ({self.order}) must be below n_poly ({self.n_poly}) for "
                             "the mean-field basis")

    def _fit(self, features) -> TimeScoreModel:
        X = np.asarray(features.in_memory().X, dtype=np.float64)
        n, d = X.shape
        scale, shift = self._coordinates(features)
        Y = X * scale + shift
        family = self._family(Y)
        top = family.top_index(self.order)
        size = 2 * top + 1 if family.max_size is None else min(family.max_size, 2 * top + 1)
        total = None if self.total_order is None else family.top_index(self.total_order)
        blocks = cluster_blocks(d, top, self.interaction or d, self.band, total)
        B = cluster_basis(blocks, d)
        if len(B) > self.max_basis:
            raise ValueError(f"the basis has {len(B)} functions (d = {d}, order {self.order}, "
                             f"interaction {self.interaction or d}), more than max_basis = "
                             f"{self.max_basis}: lower interaction or order, give total_order "
                             "or band, or raise max_basis")
        P, D = family.tables(top, size)
        ranges = needed_ranges(blocks, size, top)
        moments = union_moments(family, Y, set(ranges), size, ranges)
        lam = family.eigenvalues(size)
        rates = {U: sum(np.ix_(*[lam[i] for i in U])) if U else np.zeros(()) for U in ranges}
        system = SpectralSystem(blocks, P, D, moments, rates, top)
        slowest = float(np.min(-lam[:, 1]))
        T = self.horizon or float(np.log(1e4) / slowest)
        times = np.concatenate([[0.0], np.geomspace(T / 1000, T, self.n_times - 1)])
        c, delta, cond = self._solve(system, times, len(B), d, n)
        field = SpectralTimeField(family, B, times, c)
        attrs = provenance(self, n_samples=int(n), n_basis=int(len(B)),
                           n_moments=int(sum(m.size for m in moments.values())), horizon=T,
                           gram_condition=float(cond), ridge_used=float(delta))
        return TimeScoreModel(field, family, scale, shift, features.space, times,
                              f"spectral-{self.basis}", attrs=attrs,
                              periodic=self.basis == "fourier")

    def _solve(self, system, times, N, d, n):
        G = system.gram(times)
        b = system.divergence(times, d)
        c, delta, cond = solve_coefficients(G, b, self.rcond)
        if delta > 0:
            warnings.warn(f"the Gram matrix of the {N} basis functions is ill-conditioned at "
                          f"t = 0 (condition number {cond:.3g} from {n} samples): "
                          f"regularized by {delta:.3g} I. Lower order or interaction, or "
                          "give more samples", stacklevel=5)
        return c, delta, cond

    def _coordinates(self, features):
        """``(scale, shift)``: the forward process runs on ``y = scale * x~ + shift``."""
        space = features.space
        d = space.n_features
        if self.basis != "fourier":
            return np.ones(d), np.zeros(d)
        if self.box is None:
            raise DataError("the Fourier basis needs periodic data: give box=(low, high), the "
                            "period of the features in their physical units (or use "
                            "basis='hermite' or 'mean-field' for non-periodic data)")
        box = np.broadcast_to(np.asarray(self.box, dtype=np.float64).reshape(-1, 2), (d, 2))
        low, high = box[:, 0], box[:, 1]
        if np.any(high <= low):
            raise ValueError(f"box must be (low, high) with high > low, got {self.box!r}")
        X = space.to_physical(np.asarray(features.in_memory().X))
        outside = (X < low) | (X > high)
        if outside.any():
            raise DataError(f"{int(outside.sum())} value(s) lie outside the periodic box "
                            f"{self.box!r}: the Fourier basis needs periodic data inside one "
                            "period (wrap the data into the box, or use basis='hermite')")
        scale = 2 * np.pi * space.scale / (high - low)
        return scale, 2 * np.pi * (space.mean - low) / (high - low)

    def _family(self, Y):
        d = Y.shape[1]
        if self.basis == "hermite":
            return Hermite(d, self.alpha)
        if self.basis == "fourier":
            return Fourier(d)
        return MeanField.fit(Y, self.moments, self.n_poly)


class SpectralStationary(SpectralScore):
    """The stationary score ``s(0, x)`` of :class:`SpectralScore` as a :class:`ScoreModel`
    (``ds.score.fit(method="spectral")``, ``EffectiveLangevin(score="spectral")``)."""

    def _fit(self, features) -> ScoreModel:
        return super()._fit(features).at(0.0)
