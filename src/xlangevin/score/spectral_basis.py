r"""Eigenfunctions of forward generators, their product and derivative tables, and moments.

The forward process of a spectral score (:mod:`.spectral`) acts on coordinates ``y`` (the
standardized state, or an angle for a periodic box):
``dY = -grad V(Y) dt + sqrt(2) dW``, generator ``L f = Laplacian f - grad V . grad f``,
stationary density ``exp(-V)``. For a separable ``V = sum_i V_i(y_i)`` the eigenfunctions are
products of 1-D eigenfunctions ``phi_n`` of ``L_i f = f'' - V_i' f'`` (``L_i phi_n = lambda_n
phi_n``, orthonormal in ``L^2(exp(-V_i))``, ``phi_0 = 1``):

* :class:`Hermite` — ``V_i = alpha y^2``: ``phi_n(y) = He_n(sqrt(2 alpha) y) / sqrt(n!)``,
  ``lambda_n = -2 alpha n``;
* :class:`Fourier` — ``V_i = 0`` on the circle ``[0, 2 pi)``: ``1, sqrt 2 cos(k y),
  sqrt 2 sin(k y)``, ``lambda = -k^2``;
* :class:`MeanField` — ``V_i`` the maximum-entropy polynomial fitted to the moments of
  coordinate ``i``; eigenfunctions by a Galerkin method in the polynomials orthonormal under
  ``exp(-V_i)`` (Stieltjes procedure on a fine grid).

Each family yields the tables the score-matching problem needs, by quadrature against
``exp(-V_i)`` (exact for Hermite and Fourier, whose products are finite expansions):
``P[m, n, k] = <phi_m phi_n phi_k>`` (``phi_m phi_n = sum_k P[m, n, k] phi_k``) and
``D[n, k] = <phi_n' phi_k>`` (``phi_n' = sum_k D[n, k] phi_k``).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import hermite_e


__all__ = ["Hermite", "Fourier", "MeanField", "family_from_arrays", "hermite_values",
           "union_moments"]

#: rows of the data processed at once when moments are accumulated
CHUNK = 1 << 16


def hermite_values(y, nmax: int, xp=np):
    """Normalized probabilists' Hermite ``He_n(y)/sqrt(n!)`` and their derivatives,
    ``n = 0..nmax``: two arrays (..., nmax + 1) by the stable three-term recurrence."""
    if xp is np:
        vals = hermite_slab(y, nmax)
        ders = np.zeros_like(vals)
        ders[1:] = vals[:-1] * np.sqrt(np.arange(1, nmax + 1)).reshape((-1,) + (1,) * y.ndim)
        return np.moveaxis(vals, 0, -1), np.moveaxis(ders, 0, -1)
    vals = [xp.ones_like(y), y]
    for n in range(1, nmax):
        vals.append((y * vals[n] - np.sqrt(n) * vals[n - 1]) / np.sqrt(n + 1))
    vals = xp.stack(vals[:nmax + 1], -1)
    scale = xp.as_tensor(np.sqrt(np.arange(1, nmax + 1)), dtype=y.dtype, device=y.device)
    ders = xp.cat([xp.zeros_like(vals[..., :1]), vals[..., :-1] * scale], -1)
    return vals, ders


def hermite_slab(y, nmax: int) -> np.ndarray:
    """``He_n(y)/sqrt(n!)``, ``n = 0..nmax``, as one contiguous slab per degree:
    (nmax + 1,) + y.shape (numpy)."""
    vals = np.empty((nmax + 1,) + np.shape(y))
    vals[0] = 1.0
    if nmax:
        vals[1] = y
    for n in range(1, nmax):
        np.multiply(y, vals[n], out=vals[n + 1])
        vals[n + 1] -= np.sqrt(n) * vals[n - 1]
        vals[n + 1] /= np.sqrt(n + 1)
    return vals


class _Family:
    """A 1-D eigenfunction family per coordinate (see module docstring)."""

    kind = ""

    def tables(self, order: int, size: int):
        """``(P, D)``: products of ``phi_0..phi_order`` and derivatives of ``phi_0..phi_order``
        expanded in ``phi_0..phi_{size-1}``, one table per coordinate: (d, o+1, o+1, size) and
        (d, o+1, size)."""
        nodes, weights = self.quadrature(order, size)
        vals, ders = (a.transpose(1, 0, 2) for a in self.values(nodes.T, size - 1))
        vw = vals * weights[..., None]
        P = np.einsum("dqm,dqn,dqk->dmnk", vals[..., :order + 1], vals[..., :order + 1], vw)
        D = np.einsum("dqn,dqk->dnk", ders[..., :order + 1], vw)
        P[np.abs(P) < 1e-12] = 0.0
        D[np.abs(D) < 1e-12] = 0.0
        return P, D

    def column(self, y, i: int, nmax: int) -> np.ndarray:
        """``phi_n(y)`` of coordinate ``i`` at the values ``y`` (n,): contiguous (nmax + 1, n)."""
        Y = np.zeros((len(y), self.d))
        Y[:, i] = y
        return np.ascontiguousarray(self.values(Y, nmax)[0][:, i, :].T)


class Hermite(_Family):
    """Ornstein-Uhlenbeck forward process ``V = alpha |y|^2`` (module docstring)."""

    kind = "hermite"

    def __init__(self, d: int, alpha: float = 0.5):
        self.d, self.alpha = int(d), float(alpha)

    def eigenvalues(self, size):
        return np.tile(-2.0 * self.alpha * np.arange(size), (self.d, 1))

    #: products of functions up to index n expand exactly up to index 2 n
    max_size = None

    def top_index(self, order):
        return int(order)

    def values(self, y, nmax, xp=np):
        """``phi_n(y)`` and ``phi_n'(y)`` for every column of ``y`` (..., d): (..., d, nmax+1)."""
        r = np.sqrt(2.0 * self.alpha)
        vals, ders = hermite_values(y * r, nmax, xp)
        return vals, ders * r

    def column(self, y, i, nmax):
        return hermite_slab(y * np.sqrt(2.0 * self.alpha), nmax)

    def quadrature(self, order, size):
        x, w = hermite_e.hermegauss(order + size // 2 + 2)
        nodes = x / np.sqrt(2.0 * self.alpha)
        return np.tile(nodes, (self.d, 1)), np.tile(w / w.sum(), (self.d, 1))

    def grad_potential(self, y):
        return 2.0 * self.alpha * y

    def stationary(self, n, rng):
        return rng.normal(scale=np.sqrt(0.5 / self.alpha), size=(n, self.d))

    def to_arrays(self):
        return {"kind": self.kind, "alpha": self.alpha, "d": self.d}, {}


class Fourier(_Family):
    """Brownian motion on the torus ``[0, 2 pi)^d`` (``V = 0``; module docstring). Index
    ``2k - 1`` is ``sqrt 2 cos(k y)``, index ``2k`` is ``sqrt 2 sin(k y)``."""

    kind = "fourier"

    def __init__(self, d: int):
        self.d = int(d)

    def eigenvalues(self, size):
        k = (np.arange(size) + 1) // 2
        return np.tile(-(k.astype(float) ** 2), (self.d, 1))

    max_size = None

    def top_index(self, order):
        """``order`` is the highest frequency ``K``: indices up to ``2 K``."""
        return 2 * int(order)

    def values(self, y, nmax, xp=np):
        """``phi_n(y)`` and ``phi_n'(y)`` for every column of ``y`` (..., d): (..., d, nmax+1)."""
        index = np.arange(1, nmax + 1)
        k, odd = ((index + 1) // 2).astype(np.float64), index % 2 == 1
        if xp is not np:
            k = xp.as_tensor(k, dtype=y.dtype, device=y.device)
            odd = xp.as_tensor(odd, device=y.device)
        arg = y[..., None] * k
        c, s = np.sqrt(2.0) * xp.cos(arg), np.sqrt(2.0) * xp.sin(arg)
        cat = np.concatenate if xp is np else xp.cat
        return (cat([xp.ones_like(y)[..., None], xp.where(odd, c, s)], -1),
                cat([xp.zeros_like(y)[..., None], xp.where(odd, -k * s, k * c)], -1))

    def quadrature(self, order, size):
        q = 2 * (order + size) + 2
        nodes = 2 * np.pi * np.arange(q) / q
        return np.tile(nodes, (self.d, 1)), np.full((self.d, q), 1.0 / q)

    def grad_potential(self, y):
        return np.zeros_like(y)

    def stationary(self, n, rng):
        return rng.uniform(0.0, 2 * np.pi, size=(n, self.d))

    def to_arrays(self):
        return {"kind": self.kind, "d": self.d}, {}


class MeanField(_Family):
    r"""Separable ``V = sum_i V_i(y_i)``, ``V_i(y) = sum_{j=1}^m nu_ij y^j + log Z_i``: the
    maximum-entropy densities ``exp(-V_i)`` with the data's first ``m`` moments of each
    coordinate. Eigenfunctions ``phi_n = sum_a U_i[a, n] p_ia`` from the Galerkin problem of
    ``-<f' g'>`` in the ``n_poly`` polynomials ``p_ia`` orthonormal under ``exp(-V_i)``
    (three-term recurrence ``alpha_ia``, ``beta_ia``)."""

    kind = "mean-field"

    def __init__(self, nu, alpha, beta, U, lam, grid, density):
        self.nu, self.alpha, self.beta = np.asarray(nu), np.asarray(alpha), np.asarray(beta)
        self.U, self.lam = np.asarray(U), np.asarray(lam)
        self.grid, self.density = np.asarray(grid), np.asarray(density)
        self.d = self.nu.shape[0]

    @classmethod
    def fit(cls, Y, moments: int = 4, n_poly: int = 40, n_grid: int = 2001):
        """Fit ``V_i`` (maximum entropy, ``moments`` even) and the eigenfunctions to data ``Y``."""
        d = Y.shape[1]
        lo, hi = Y.min(0), Y.max(0)
        pad = 0.5 * (hi - lo) + 1.0
        grid = np.linspace(lo - pad, hi + pad, n_grid, axis=1)           # (d, g)
        mu = np.stack([np.mean(Y ** j, 0) for j in range(1, moments + 1)], 1)
        nu = np.stack([_max_entropy(grid[i], mu[i]) for i in range(d)])
        powers = grid[..., None] ** np.arange(1, moments + 1)
        logp = -np.einsum("dgj,dj->dg", powers, nu)
        dens = np.exp(logp - logp.max(1, keepdims=True))
        w = dens * (grid[:, 1:2] - grid[:, :1])
        dens /= w.sum(1, keepdims=True)
        w /= w.sum(1, keepdims=True)
        alpha, beta = _stieltjes(grid, w, n_poly)
        p, dp = _orthopoly(grid, alpha, beta, xp=np)
        stiff = np.einsum("dga,dgb,dg->dab", dp, dp, w)
        lam, U = np.linalg.eigh(-stiff)
        lam, U = lam[:, ::-1], U[..., ::-1]
        U = U * np.sign(U[:, :1, :] + (U[:, :1, :] == 0))      # phi_n with <phi_n p_0> >= 0
        lam[:, 0] = 0.0
        return cls(nu, alpha, beta, U, lam, grid, dens)

    def eigenvalues(self, size):
        return self.lam[:, :size]

    @property
    def max_size(self):
        """Products are expanded in all Galerkin eigenfunctions (truncated)."""
        return self.U.shape[-1]

    def top_index(self, order):
        return int(order)

    def values(self, y, nmax, xp=np):
        p, dp = _orthopoly(y.T if xp is np else y.T, self.alpha, self.beta, xp)
        U = self.U[..., :nmax + 1] if xp is np else xp.as_tensor(
            np.ascontiguousarray(self.U[..., :nmax + 1]), dtype=y.dtype, device=y.device)
        vals = xp.einsum("dga,dan->gdn", p, U)
        ders = xp.einsum("dga,dan->gdn", dp, U)
        return vals.reshape(y.shape + (nmax + 1,)), ders.reshape(y.shape + (nmax + 1,))

    def quadrature(self, order, size):
        w = self.density * (self.grid[:, 1:2] - self.grid[:, :1])
        return self.grid, w / w.sum(1, keepdims=True)

    def grad_potential(self, y):
        j = np.arange(1, self.nu.shape[1] + 1)
        return np.einsum("...dj,dj->...d", y[..., None] ** (j - 1) * j, self.nu)

    def stationary(self, n, rng):
        cdf = np.cumsum(self.density, 1)
        cdf /= cdf[:, -1:]
        u = rng.uniform(size=(n, self.d))
        return np.stack([np.interp(u[:, i], cdf[i], self.grid[i]) for i in range(self.d)], 1)

    def to_arrays(self):
        return {"kind": self.kind}, {"nu": self.nu, "alpha": self.alpha, "beta": self.beta,
                                     "U": self.U, "lam": self.lam, "grid": self.grid,
                                     "density": self.density}


def family_from_arrays(config, arrays):
    """Inverse of a family's ``to_arrays``."""
    if config["kind"] == "hermite":
        return Hermite(config["d"], config["alpha"])
    if config["kind"] == "fourier":
        return Fourier(config["d"])
    return MeanField(**{k: arrays[k] for k in ("nu", "alpha", "beta", "U", "lam", "grid",
                                               "density")})


def _max_entropy(x, mu, iterations: int = 200):
    """Lagrange multipliers ``nu`` of ``rho ∝ exp(-sum_j nu_j x^j)`` with moments ``mu``
    (Newton on the convex dual ``log Z(nu) + nu . mu`` over the grid ``x``)."""
    m = len(mu)
    F = x[:, None] ** np.arange(1, m + 1)
    nu = np.zeros(m)
    nu[1] = 0.5 / max(mu[1] - mu[0] ** 2, 1e-6)
    nu[0] = -2 * nu[1] * mu[0]
    for _ in range(iterations):
        logp = -F @ nu
        p = np.exp(logp - logp.max())
        p /= p.sum()
        mean = p @ F
        grad = mu - mean
        hess = (F * p[:, None]).T @ F - np.outer(mean, mean)
        step = np.linalg.solve(hess + 1e-12 * np.eye(m), grad)
        t = 1.0
        dual = np.log(np.exp(logp - logp.max()).sum()) + logp.max() + nu @ mu
        while t > 1e-8:
            trial = nu - t * step
            lt = -F @ trial
            if trial[-1] > 0 and np.log(np.exp(lt - lt.max()).sum()) + lt.max() + trial @ mu \
                    <= dual + 1e-4 * t * (grad @ -step):
                break
            t /= 2
        nu = nu - t * step
        if np.max(np.abs(grad)) < 1e-10:
            break
    return nu


def _stieltjes(grid, w, n):
    """Recurrence coefficients of the polynomials orthonormal under the discrete weights ``w``
    on ``grid`` (d, g): ``beta_{k+1} p_{k+1} = (x - alpha_k) p_k - beta_k p_{k-1}``."""
    d = grid.shape[0]
    alpha, beta = np.zeros((d, n)), np.zeros((d, n + 1))
    prev, cur = np.zeros_like(grid), np.ones_like(grid)
    for k in range(n):
        alpha[:, k] = np.sum(w * grid * cur * cur, 1)
        nxt = (grid - alpha[:, k:k + 1]) * cur - beta[:, k:k + 1] * prev
        beta[:, k + 1] = np.sqrt(np.sum(w * nxt * nxt, 1))
        prev, cur = cur, nxt / beta[:, k + 1:k + 2]
    return alpha, beta


def _orthopoly(x, alpha, beta, xp):
    """Orthonormal polynomials and derivatives at ``x`` (d, g): (d, g, n) each."""
    n = alpha.shape[1]
    prev, dprev = xp.zeros_like(x), xp.zeros_like(x)
    cur, dcur = xp.ones_like(x), xp.zeros_like(x)
    vals, ders = [cur], [dcur]
    for k in range(n - 1):
        ak = _column(alpha[:, k], x, xp)
        bk, bk1 = _column(beta[:, k], x, xp), _column(beta[:, k + 1], x, xp)
        nxt = ((x - ak) * cur - bk * prev) / bk1
        dnxt = (cur + (x - ak) * dcur - bk * dprev) / bk1
        prev, dprev, cur, dcur = cur, dcur, nxt, dnxt
        vals.append(cur)
        ders.append(dcur)
    stack = np.stack if xp is np else xp.stack
    return stack(vals, -1), stack(ders, -1)


def _column(v, like, xp):
    if xp is np:
        return v[:, None]
    return xp.as_tensor(v[:, None], dtype=like.dtype, device=like.device)


def union_moments(family, Y, unions, size: int, ranges: dict | None = None) -> dict:
    r"""``{U: M_U}``: for each tuple of coordinates ``U``, the tensor (size,)*|U| of the data
    moments ``M_U[m] = mean_s prod_{i in U} phi_{m_i}(Y[s, i])`` (``phi_0 = 1``, so it holds
    every moment of a sub-support too). ``ranges[U]`` (optional) lists, per axis, the indices
    that are needed (the others are left 0). Each is one matrix product of the Khatri-Rao
    products of the two halves of ``U``, accumulated in chunks of :data:`CHUNK` rows, from
    per-coordinate tables (``family.column``: contiguous per index, no strided copies)."""
    ranges = ranges or {}
    full = np.arange(size)
    axes = {U: ranges.get(U, [full] * len(U)) for U in unions}
    sums = {U: np.zeros(tuple(len(a) for a in axes[U])) for U in unions}
    n = len(Y)
    used = sorted({i for U in unions for i in U})
    for start in range(0, n, CHUNK):
        rows = {i: family.column(Y[start:start + CHUNK, i], i, size - 1) for i in used}
        for U in unions:
            if not U:
                continue
            half = len(U) // 2
            tables = [rows[i][a] for i, a in zip(U, axes[U])]
            m = tables[0].shape[-1]
            left, right = _khatri_rao(tables[:half], m), _khatri_rao(tables[half:], m)
            sums[U] += (left @ right.T).reshape(sums[U].shape)
    out = {}
    for U in unions:
        M = np.zeros((size,) * len(U))
        M[np.ix_(*axes[U])] = sums[U] / n
        out[U] = M if U else np.ones(())
    return out


def _khatri_rao(tables, m):
    """Column-wise outer product of the (k_i, m) ``tables``: (prod k_i, m), C order."""
    if not tables:
        return np.ones((1, m))
    out = tables[0]
    for table in tables[1:]:
        out = (out[:, None, :] * table[None, :, :]).reshape(-1, out.shape[-1])
    return out
