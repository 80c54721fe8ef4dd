r"""Diffusion-map Langevin sampler and conditional sampling (METHODS.md §7, paper 003).

Gottwald, Li, Marzouk & Reich, "Stable generative modeling using diffusion maps". Everything
below acts on STANDARDIZED states (``FeatureSpace``; ``standardize=False`` keeps raw units, as the
paper's examples do). Data ``X = [x_1 .. x_M]`` (here rows of an (M, d) array).

Kernel, with ``K_i = rho_i I``::

    t_ij = exp(-(x_i - x_j)^T (K_i + K_j)^{-1} (x_i - x_j) / (2 eps))
         = exp(-|x_i - x_j|^2 / (2 eps (rho_i + rho_j)))

Fixed bandwidth: ``rho = 1`` (a Gaussian of variance ``2 eps``). Variable bandwidth:
``rho_i = (q_i / mean q)^beta`` with ``beta <= 0`` and the cheap KDE
``q(x) = (1/M) sum_j exp(-|x - x_j|^2 / (4 eps_kde))`` (``eps_kde = eps`` by default), evaluated on
the same neighbour lists as the kernel.

Sinkhorn: ``P = D(v) T D(v)`` symmetric with ``P 1 = 1/M``. Solved in the log domain
(``u = log v``) by the damped symmetric fixed point ``u <- (u - log M - LSE_j(log T_ij + u_j)) / 2``
(sparse kernels: a numba row-wise log-sum-exp; dense kernels: ``log(T e^{u - max u}) + max u``,
one matrix-vector product, exact to rounding since ``T_ii = 1 >= T_ij``).
Linearised, its error contracts by ``(I - W)/2`` with ``W`` the row-normalised kernel, whose
spectrum lies in [0, 1] for a Gaussian (positive semi-definite) kernel: at least a factor 2 per
iteration, ~40 iterations to 1e-12, and no overflow whatever ``eps``.

Out of sample::

    p_eps(x) = D(v) t(x) / (v^T t(x)),   m_eps(x) = X p_eps(x),
    C(x) = (X - m 1^T) D(p) (X - m 1^T)^T,

with ``t(x)_j`` the kernel between ``x`` (bandwidth ``rho(x)`` from the KDE at ``x``) and
``x_j``. In-sample, ``p_eps(x_i) = M P[i]``. The drift ``b(x) = (m_eps(x) - x) / eps`` is, to
first order in eps, ``K grad log pi + div K`` (``= grad log pi`` for fixed bandwidth): the drift
of the Langevin dynamics with mobility ``K`` that keeps ``pi`` invariant (derivation in
docs/diffmap.md). With ``rho = (q/mean q)^beta``, ``div K = grad rho = beta rho grad log q``, so
the score is ``grad log pi ~ b(x) / rho(x) - beta grad log q(x)``
(:meth:`DiffusionMapSampler.score`; the KDE gradient is computed exactly).

Samplers (one step, all chains at once; ``xi ~ N(0, I)``):

* ``scheme="split-step", noise="constant"`` (paper Eq. 18):
  ``x' = x + sqrt(2 eps) K(x)^{1/2} xi;  x <- m_eps(x')``;
* ``scheme="split-step", noise="data-aware"`` (Eq. 19):
  ``x' = x + C(x)^{1/2} xi;  x <- m_eps(x')``. Both keep the chain in the convex hull of the
  data (``m_eps`` is a convex combination of data points). Each step has two halves:
  ``output="mean"`` (default) reports ``m_eps(x')`` (in the hull, but concentrated onto the
  data's manifold at the bandwidth scale: the arc example's radial std 0.013-0.028 for a
  true 0.06), ``output="noisy"`` reports ``x'``, which carries the local spread: with
  data-aware noise ``C`` holds the data's thickness and the radial law is reproduced, with
  constant noise ``sqrt(2 eps)`` blurs it (docs/diffmap.md);
* ``scheme="langevin", noise="constant"``: ``x <- x + dt b(x) + sqrt(2 dt) K(x)^{1/2} xi``;
  ``dt = eps`` (default) gives ``x <- m_eps(x) + sqrt(2 eps) K^{1/2} xi``;
* ``scheme="langevin", noise="data-aware"``: ``x <- x + dt b(x) + sqrt(dt / eps) C(x)^{1/2} xi``
  (``C ~ 2 eps K``).

Conditional sampling (paper §5): the components named in ``condition`` are reset to their given
values ``z*`` before every step and receive no noise; only the free components move (for the
data-aware noise the free-free block of C is used). Chains start from data points drawn with the
kernel weights of the conditioned components (``exp(-|z* - z_j|^2 / (4 eps))``), i.e. from a
kernel estimate of the conditional law.

Neighbour lists: for M up to ``DENSE_MAX`` (default 4000) the kernel is dense and exact. Above,
or when ``k_neighbors`` is given, a k-nearest-neighbour kernel (scipy cKDTree) is used: the
in-sample kernel is the symmetrised union of the kNN graphs (sparse CSR, M*k entries), the
out-of-sample kernel uses the k nearest data points. ``k_neighbors=None`` chooses k from a pilot
count of the points within the radius where the fixed-bandwidth kernel falls below 1e-6
(capped so that the graph holds at most ~3e7 entries); the largest kernel value cut off is
reported as ``attrs["kernel_truncation"]`` (warning above 1e-3).

Stochastic subgrid closure (paper §6.3): :func:`fit_subgrid_closure`.
"""

from __future__ import annotations

import json
import math
import warnings

import numba
import numpy as np
import torch
import xarray as xr
from scipy import sparse
from scipy.spatial import cKDTree

from . import io
from ._params import Interval, OneOf, validate_params
from ._version import __version__
from .data import DataError, FeatureSpace, as_feature_data, check_states

__all__ = ["DiffusionMap", "DiffusionMapSampler", "diffmap", "symmetric_sinkhorn",
           "fit_subgrid_closure", "SubgridClosure", "noisy_arc", "hyper_semisphere",
           "DENSE_MAX"]

DENSE_MAX = 4000          # M up to this: exact dense kernel when k_neighbors is None
_PILOT_TOL = 1e-6         # auto k: count neighbours down to this kernel value
_MAX_GRAPH = 30_000_000   # auto k: at most ~this many kernel entries
_CHUNK = 1 << 22          # evaluation chunks: rows * neighbours <= this
_TRUNCATION_WARN = 1e-3
_SMALL = 200_000          # dense blocks below this many entries: numpy (no thread pools)
_PARALLEL_QUERY = 2000    # tree queries of at least this many points use all cores


# ------------------------------------------------------------------------------------------
# example data of the paper
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# Sinkhorn
# ------------------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True)
def _csr_row_lse(indptr, indices, logdata, u, out):
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        mx = -np.inf
        for p in range(indptr[i], indptr[i + 1]):
            a = logdata[p] + u[indices[p]]
            if a > mx:
                mx = a
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            s += math.exp(logdata[p] + u[indices[p]] - mx)
        out[i] = mx + math.log(s)


def _row_lse(kernel, u):
    """``LSE_j(log K_ij + u_j)`` for a CSR log-kernel (tuple; per-row max shift, numba) or a
    dense kernel ``K = exp(log K)`` (ndarray; global shift: ``log(K e^{u - max u}) + max u``).

    The dense form is exact to rounding here: ``K_ii = 1 >= K_ij`` and ``v = e^u`` stays in
    ``[1 / (M^{3/2}), M^{-1/2}]`` (``v_i (K v)_i = 1/M``), so an entry that underflows in K
    (``< 1e-308``) changes ``(K v)_i >= v_i`` by less than 1e-300 relative."""
    if isinstance(kernel, tuple):
        indptr, indices, logdata = kernel
        out = np.empty(indptr.shape[0] - 1)
        _csr_row_lse(indptr, indices, logdata, u, out)
        return out
    umax = float(u.max())
    return np.log(kernel @ np.exp(u - umax)) + umax


def symmetric_sinkhorn(kernel, tol: float = 1e-12, max_iter: int = 5000, log: bool = False):
    """Symmetric Sinkhorn scaling: ``v > 0`` with ``P = D(v) T D(v)`` and ``P 1 = 1/M``.

    ``kernel`` is a symmetric non-negative matrix with a positive diagonal: a dense array, a
    scipy sparse matrix (zeros are absent entries), or, with ``log=True``, its logarithm (dense
    array with ``-inf`` for zeros, or a tuple ``(indptr, indices, log_values)`` in CSR form).
    Iterates in the log domain (module docstring) until ``max_i |M (P 1)_i - 1| < tol``.

    Returns ``(v, info)`` with ``info = {"n_iter", "residual"}`` (residual: the final
    ``max_i |M (P 1)_i - 1|``). Warns if ``max_iter`` is reached first.
    """
    if isinstance(kernel, tuple):
        if not log:
            raise ValueError("a CSR tuple kernel must be given as log values with log=True")
        logK = (np.asarray(kernel[0], np.int64), np.asarray(kernel[1], np.int64),
                np.asarray(kernel[2], np.float64))
        M = logK[0].shape[0] - 1
    elif sparse.issparse(kernel):
        K = sparse.csr_array(kernel, dtype=np.float64)
        K.sum_duplicates()
        K.sort_indices()
        if np.any(K.data < 0):
            raise ValueError("the kernel must be non-negative")
        with np.errstate(divide="ignore"):
            logdata = K.data if log else np.log(K.data)
        logK = (K.indptr.astype(np.int64), K.indices.astype(np.int64), logdata)
        M = K.shape[0]
    else:
        K = np.asarray(kernel, dtype=np.float64)
        if K.ndim != 2 or K.shape[0] != K.shape[1]:
            raise ValueError(f"the kernel must be square, got shape {K.shape}")
        if log:
            # shift rows/columns symmetrically so that the diagonal is 1 (v absorbs the shift)
            dlog = np.diag(K).copy()
            K = np.exp(K - 0.5 * (dlog[:, None] + dlog[None, :]))
        elif np.any(K < 0):
            raise ValueError("the kernel must be non-negative")
        else:
            dlog = None
        M = K.shape[0]
        u, n_iter, res = _sinkhorn_log(K, M, tol, max_iter)
        if dlog is not None:
            u = u - 0.5 * dlog
        return np.exp(u), {"n_iter": n_iter, "residual": res}
    u, n_iter, res = _sinkhorn_log(logK, M, tol, max_iter)
    return np.exp(u), {"n_iter": n_iter, "residual": res}


def _sinkhorn_log(logK, M, tol, max_iter):
    logM = math.log(M)
    u = np.full(M, -0.5 * logM)
    res = np.inf
    for it in range(1, int(max_iter) + 1):
        lse = _row_lse(logK, u)
        r = u + lse + logM          # log(M (P 1)_i)
        res = float(np.max(np.abs(np.expm1(r))))
        if res < tol:
            return u, it, res
        u = 0.5 * (u - logM - lse)
    warnings.warn(f"symmetric Sinkhorn stopped after {max_iter} iterations with row-sum "
                  f"residual {res:.3g} > tol {tol:g}", RuntimeWarning, stacklevel=3)
    return u, int(max_iter), res


# ------------------------------------------------------------------------------------------
# kernel construction
# ------------------------------------------------------------------------------------------
def _t(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _sq_dist_torch(A, B):
    """Squared distances (n, m), torch float64, clamped at 0."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return d2.clamp_(min=0.0)


def _auto_k(X, tree, eps, rng, workers):
    M = X.shape[0]
    idx = rng.choice(M, size=min(M, 256), replace=False)
    radius = math.sqrt(4.0 * eps * math.log(1.0 / _PILOT_TOL))
    counts = tree.query_ball_point(X[idx], radius, return_length=True, workers=workers)
    k = int(np.quantile(counts, 0.95))
    cap = max(64, _MAX_GRAPH // M)
    return int(min(M, max(32, min(k, cap))))


class _Kernel:
    """Fitted kernel state and out-of-sample evaluation (standardized arrays)."""

    def __init__(self, X, eps, beta, kde_eps, k, logv, rho, qbar, qmin, workers=-1):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.M, self.d = self.X.shape
        self.eps, self.beta, self.kde_eps = float(eps), float(beta), float(kde_eps)
        self.k = int(k)
        self.dense = self.k >= self.M
        self.logv = np.asarray(logv, np.float64)
        self.rho = np.asarray(rho, np.float64)
        self.qbar = float(qbar)
        self.qmin = float(qmin)   # out-of-sample KDE floored here: rho(x) <= max rho_i
        self.workers = workers
        self._tree = None
        self._Xt = _t(self.X)
        self._XXX = torch.cat([self._Xt, (self._Xt[:, :, None] * self._Xt[:, None, :])
                               .reshape(self.M, -1)], dim=1)
        self._logv_t = _t(self.logv)
        self._rho_t = _t(self.rho)
        self._xx = (self._Xt * self._Xt).sum(1)
        self._Xt_scaled = (self._Xt.T / (2.0 * self.eps)).contiguous()
        self._bias = (self._logv_t - self._xx / (4.0 * self.eps))[None, :]
        self._xx_np = self._xx.numpy()
        self._Xs_np = self._Xt_scaled.numpy()
        self._bias_np = self._bias.numpy()
        self._XXX_np = self._XXX.numpy()
        self._cond_trees = {}

    def _workers(self, n):
        return self.workers if n >= _PARALLEL_QUERY else 1

    @property
    def tree(self):
        if self._tree is None:
            self._tree = cKDTree(self.X)
        return self._tree

    # -- out-of-sample ----------------------------------------------------------------------
    def evaluate(self, Z, cov=False, probs=False, rho_only=False):
        """m_eps, C (optional), rho and (optional) p at states Z (n, d), standardized."""
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        n = Z.shape[0]
        m = np.empty((n, self.d))
        C = np.empty((n, self.d, self.d)) if cov else None
        rz = np.ones(n)
        P = [] if probs else None
        width = self.M if self.dense else self.k
        rows = max(1, _CHUNK // max(width * max(self.d, 4), 1))
        for s in range(0, n, rows):
            sl = slice(s, min(n, s + rows))
            out = (self._eval_dense if self.dense else self._eval_knn)(Z[sl], cov, probs,
                                                                       rho_only)
            rz[sl] = out[2]
            if rho_only:
                continue
            m[sl] = out[0]
            if cov:
                C[sl] = out[1]
            if probs:
                P.append(out[3])
        if probs:
            P = sparse.vstack(P, format="csr") if P else sparse.csr_array((0, self.M))
        return m, C, rz, P

    def _eval_dense(self, Z, cov, probs, rho_only=False):
        if Z.shape[0] * self.M < _SMALL:
            return self._eval_dense_numpy(Z, cov, probs, rho_only)
        Zt = _t(Z)
        if self.beta == 0.0:
            # rho = 1: log w_j = log v_j - |z - x_j|^2 / (4 eps); the |z|^2 term is constant per
            # row and drops out of the softmax, so the logits are one matrix product + bias
            logw = torch.addmm(self._bias, Zt, self._Xt_scaled)
            rz = torch.ones(Z.shape[0], dtype=torch.float64)
        else:
            d2 = torch.addmm(self._xx[None, :], Zt, self._Xt.T, alpha=-2.0)
            d2.add_((Zt * Zt).sum(1)[:, None]).clamp_(min=0.0)
            q = torch.exp(d2 / (-4.0 * self.kde_eps)).mean(1)
            rz = (q.clamp(min=self.qmin) / self.qbar).pow(self.beta)
            if rho_only:
                return None, None, rz.numpy(), None
            den = rz[:, None] + self._rho_t[None, :]
            den.mul_(2.0 * self.eps)
            logw = d2.div_(den).neg_().add_(self._logv_t[None, :])
        p = torch.softmax(logw, dim=1)
        C = None
        if cov:
            mom = p @ self._XXX
            m = mom[:, :self.d]
            C = mom[:, self.d:].reshape(-1, self.d, self.d) - m[:, :, None] * m[:, None, :]
            C = C.numpy()
        else:
            m = p @ self._Xt
        P = sparse.csr_array(p.numpy()) if probs else None
        return m.numpy(), C, rz.numpy(), P

    def _eval_dense_numpy(self, Z, cov, probs, rho_only=False):
        """Same as the torch path, for small blocks (no thread-pool overhead)."""
        X = self.X
        if self.beta == 0.0:
            logw = Z @ self._Xs_np + self._bias_np
            rz = np.ones(Z.shape[0])
        else:
            d2 = (Z * Z).sum(1)[:, None] + self._xx_np[None, :] - 2.0 * (Z @ X.T)
            np.maximum(d2, 0.0, out=d2)
            q = np.exp(d2 / (-4.0 * self.kde_eps)).mean(1)
            rz = (np.maximum(q, self.qmin) / self.qbar) ** self.beta
            if rho_only:
                return None, None, rz, None
            logw = self.logv[None, :] - d2 / (2.0 * self.eps * (rz[:, None] + self.rho[None, :]))
        logw -= logw.max(1, keepdims=True)
        p = np.exp(logw)
        p /= p.sum(1, keepdims=True)
        C = None
        if cov:
            mom = p @ self._XXX_np
            m = mom[:, :self.d]
            C = mom[:, self.d:].reshape(-1, self.d, self.d) - m[:, :, None] * m[:, None, :]
        else:
            m = p @ X
        P = sparse.csr_array(p) if probs else None
        return m, C, rz, P

    def _eval_knn(self, Z, cov, probs, rho_only=False):
        dist, idx = self.tree.query(Z, k=self.k, workers=self._workers(Z.shape[0]))
        if self.k == 1:
            dist, idx = dist[:, None], idx[:, None]
        d2 = dist * dist
        if self.beta != 0.0:
            q = np.exp(-d2 / (4.0 * self.kde_eps)).sum(1) / self.M
            rz = (np.maximum(q, self.qmin) / self.qbar) ** self.beta
            if rho_only:
                return None, None, rz, None
        else:
            rz = np.ones(Z.shape[0])
        logw = self.logv[idx] - d2 / (2.0 * self.eps * (rz[:, None] + self.rho[idx]))
        logw -= logw.max(1, keepdims=True)
        p = np.exp(logw)
        p /= p.sum(1, keepdims=True)
        Xn = self.X[idx]
        m = np.einsum("nk,nkd->nd", p, Xn)
        C = None
        if cov:
            Xc = Xn - m[:, None, :]
            C = np.einsum("nki,nkj->nij", Xc * p[:, :, None], Xc)
        P = None
        if probs:
            n, k = idx.shape
            P = sparse.csr_array((p.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)),
                                 shape=(n, self.M))
            P.sort_indices()
        return m, C, rz, P

    def kde_rho(self, Z):
        """rho at states Z (ones for fixed bandwidth)."""
        if self.beta == 0.0:
            return np.ones(Z.shape[0])
        return self.evaluate(Z, rho_only=True)[2]

    def kde_grad_log(self, Z):
        """``grad log q(x)`` of the KDE behind rho (0 where q is floored at ``qmin``)."""
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        out = np.empty_like(Z)
        width = self.M if self.dense else self.k
        rows = max(1, _CHUNK // max(width * max(self.d, 4), 1))
        for s in range(0, Z.shape[0], rows):
            z = Z[s:s + rows]
            if self.dense:
                Xn = self.X[None]
                d2 = np.maximum((z * z).sum(1)[:, None] + self._xx_np[None, :]
                                - 2.0 * (z @ self.X.T), 0.0)[:, :, None]
            else:
                dist, idx = self.tree.query(z, k=self.k, workers=self._workers(z.shape[0]))
                Xn = self.X[idx]
                d2 = (dist * dist)[:, :, None]
            w = np.exp(-d2 / (4.0 * self.kde_eps))
            q = w.sum(1) / self.M
            g = ((w * Xn).sum(1) / w.sum(1) - z) / (2.0 * self.kde_eps)
            g[q[:, 0] < self.qmin] = 0.0
            out[s:s + rows] = g
        return out

    # -- conditional initial states -----------------------------------------------------------
    def draw_conditional(self, cidx, zc, rng):
        """Data indices drawn with weights ``exp(-|z* - x_j[c]|^2 / (4 eps))`` (a kernel
        estimate of the conditional law; the Sinkhorn weights v ~ pi^{-1/2} must NOT enter here,
        they would tilt the draw towards low-density points)."""
        key = tuple(int(c) for c in cidx)
        n = zc.shape[0]
        k = min(self.M, max(self.k if not self.dense else 256, 256))
        if key not in self._cond_trees:
            self._cond_trees[key] = cKDTree(self.X[:, list(key)])
        dist, idx = self._cond_trees[key].query(zc, k=k, workers=self._workers(n))
        if k == 1:
            dist, idx = dist[:, None], idx[:, None]
        logw = -dist * dist / (4.0 * self.eps)
        logw -= logw.max(1, keepdims=True)
        w = np.exp(logw)
        cw = np.cumsum(w, axis=1)
        r = rng.random(n) * cw[:, -1]
        pick = (cw < r[:, None]).sum(1)
        return idx[np.arange(n), np.minimum(pick, k - 1)]


def _fit_kernel(X, eps, beta, kde_eps, k, tol, max_iter, rng, workers):
    """rho, (qbar, qmin), log v, info (Sinkhorn iterations/residual, kernel truncation)."""
    M = X.shape[0]
    info = {}
    if k >= M:  # dense, exact
        Xt = _t(X)
        d2 = _sq_dist_torch(Xt, Xt)
        d2.fill_diagonal_(0.0)
        if beta != 0.0:
            q = torch.exp(-d2 / (4.0 * kde_eps)).mean(1).numpy()
        else:
            q = np.ones(M)
        qbar = float(q.mean())
        rho = (q / qbar) ** beta
        rt = _t(rho)
        K = torch.exp(d2.div_(-2.0 * eps * (rt[:, None] + rt[None, :]))).numpy()
        del d2
        u, n_iter, res = _sinkhorn_log(K, M, tol, max_iter)
        truncation = 0.0
    else:
        tree = cKDTree(X)
        dist, idx = tree.query(X, k=k, workers=workers)
        d2 = dist * dist
        # self must be present (duplicates may displace it): force it into column 0
        d2[:, 0] = 0.0
        idx[:, 0] = np.arange(M)
        if beta != 0.0:
            q = np.exp(-d2 / (4.0 * kde_eps)).sum(1) / M
        else:
            q = np.ones(M)
        qbar = float(q.mean())
        rho = (q / qbar) ** beta
        rows = np.repeat(np.arange(M, dtype=np.int64), k)
        cols = idx.ravel().astype(np.int64)
        dd = d2.ravel()
        lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
        key, first = np.unique(lo * M + hi, return_index=True)
        dd = dd[first]
        lo, hi = key // M, key % M
        off = lo != hi
        R = np.concatenate([lo, hi[off]])
        Cc = np.concatenate([hi, lo[off]])
        D = np.concatenate([dd, dd[off]])
        order = np.lexsort((Cc, R))
        R, Cc, D = R[order], Cc[order], D[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(R, minlength=M))]).astype(np.int64)
        logdata = -D / (2.0 * eps * (rho[R] + rho[Cc]))
        u, n_iter, res = _sinkhorn_log((indptr, Cc, logdata), M, tol, max_iter)
        # largest kernel value at the k-th (farthest kept) neighbour: what the cut may miss
        far = -d2[:, -1] / (2.0 * eps * (rho + rho[idx[:, -1]]))
        truncation = float(np.exp(far.max()))
        info["nnz"] = int(indptr[-1])
    info.update(sinkhorn_iterations=n_iter, sinkhorn_residual=res,
                kernel_truncation=truncation)
    return rho, (qbar, float(q.min())), u, info


# ------------------------------------------------------------------------------------------
# estimator
# ------------------------------------------------------------------------------------------
class DiffusionMap:
    """Diffusion-map Langevin sampler estimator (module docstring; METHODS.md §7).

    Parameters
    ----------
    eps : kernel bandwidth = sampler step (standardized units unless ``standardize=False``).
    beta : variable-bandwidth exponent in (-1, 0]; 0 = fixed bandwidth.
    noise : "data-aware" (covariance C(x)) or "constant" (``2 eps K``).
    scheme : "split-step" (Eqs. 18/19, samples stay in the data's convex hull) or "langevin".
    dt : Langevin step (``scheme="langevin"`` only); default ``eps``.
    output : which half of a split step is reported: "mean" (``m_eps(x')``, in the convex hull
        of the data and concentrated at the bandwidth scale) or "noisy" (``x'``, the sample
        with its noise: carries the data's local spread, e.g. the radial law of the arc
        example); the chain itself always continues from ``m_eps(x')``.
    k_neighbors : neighbours of the sparse kernel; None = dense up to ``DENSE_MAX`` samples,
        else chosen automatically; ``>= M`` = dense.
    kde_eps : bandwidth parameter of the KDE behind ``rho`` (default ``eps``).
    standardize : learn in standardized units (default True).
    max_samples : use at most this many samples (a random subset).
    tol, max_iter : Sinkhorn tolerance on ``max |M (P 1)_i - 1|`` and iteration cap.
    dim, variables : data-layer options for xarray input.
    seed : seeds the subset, the pilot of the automatic k and the model's default random stream.
    """

    _table = {"eps": Interval(0, None, closed="neither"),
              "beta": Interval(-1, 0, closed="right"),
              "noise": OneOf(("data-aware", "constant")),
              "scheme": OneOf(("split-step", "langevin")),
              "output": OneOf(("mean", "noisy")),
              "dt": Interval(0, None, closed="neither", optional=True),
              "k_neighbors": Interval(1, None, integer=True, optional=True),
              "kde_eps": Interval(0, None, closed="neither", optional=True),
              "max_samples": Interval(2, None, integer=True, optional=True),
              "tol": Interval(0, None, closed="neither"),
              "max_iter": Interval(1, None, integer=True)}

    def __init__(self, eps=0.01, beta=0.0, noise="data-aware", scheme="split-step", dt=None,
                 output="mean", k_neighbors=None, kde_eps=None, standardize=True, max_samples=None,
                 tol=1e-12, max_iter=5000, dim="time", variables=None, seed=None):
        self.eps = eps
        self.beta = beta
        self.noise = noise
        self.scheme = scheme
        self.dt = dt
        self.output = output
        self.k_neighbors = k_neighbors
        self.kde_eps = kde_eps
        self.standardize = standardize
        self.max_samples = max_samples
        self.tol = tol
        self.max_iter = max_iter
        self.dim = dim
        self.variables = variables
        self.seed = seed

    def get_params(self):
        return dict(vars(self))

    def fit(self, data) -> "DiffusionMapSampler":
        validate_params(vars(self), self._table)
        if self.dt is not None and self.scheme != "langevin":
            raise ValueError("dt is the step of scheme='langevin'; the split-step schemes "
                             "step with eps")
        space, X = as_feature_data(data, self.dim, self.variables,
                                   standardize=self.standardize)
        X = np.ascontiguousarray(np.asarray(X), dtype=np.float64)  # dask: needed in memory
        rng = np.random.default_rng(self.seed)
        n_all = X.shape[0]
        if self.max_samples is not None and n_all > self.max_samples:
            X = X[np.sort(rng.choice(n_all, self.max_samples, replace=False))]
        X.setflags(write=False)
        M = X.shape[0]
        eps = float(self.eps)
        kde_eps = float(self.kde_eps) if self.kde_eps is not None else eps
        if self.k_neighbors is None:
            k = M if M <= DENSE_MAX else _auto_k(X, cKDTree(X), eps, rng, -1)
            k_mode = "dense" if k >= M else "auto"
        else:
            k = min(int(self.k_neighbors), M)
            k_mode = "dense" if k >= M else "given"
        rho, qstats, u, info = _fit_kernel(X, eps, float(self.beta), kde_eps, k, float(self.tol),
                                         int(self.max_iter), rng, -1)
        if info["kernel_truncation"] > _TRUNCATION_WARN:
            warnings.warn(f"the k = {k} nearest-neighbour kernel is cut where it is still "
                          f"{info['kernel_truncation']:.2g} of its peak; raise k_neighbors "
                          f"(or lower eps) for an accurate drift", RuntimeWarning, stacklevel=2)
        attrs = {"eps": eps, "beta": float(self.beta), "kde_eps": kde_eps, "noise": self.noise,
                 "scheme": self.scheme, "output": self.output, "dt": float(self.dt) if self.dt is not None else eps,
                 "k_neighbors": int(k), "k_mode": k_mode, "n_data": int(M),
                 "n_samples_given": int(n_all), "standardize": bool(self.standardize),
                 "seed": "None" if self.seed is None else str(self.seed),
                 "xlangevin_version": __version__, **info}
        kernel = _Kernel(X, eps, float(self.beta), kde_eps, k, u, rho, *qstats)
        return DiffusionMapSampler(kernel, space, attrs,
                                   rng=np.random.default_rng(rng.integers(2**63)))


def diffmap(data, eps=0.01, **params) -> "DiffusionMapSampler":
    """Accessor entry point: ``DiffusionMap(eps=eps, **params).fit(data)`` (xarray or array)."""
    return DiffusionMap(eps=eps, **params).fit(data)


# ------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------
def _sqrtm_apply(C, xi):
    """``C^{1/2} xi`` per row for a stack of PSD matrices C (n, k, k), by eigendecomposition."""
    if C.shape[-1] == 1:
        return np.sqrt(np.clip(C[:, 0, 0], 0.0, None))[:, None] * xi
    w, U = np.linalg.eigh(C)
    y = np.einsum("nji,nj->ni", U, xi) * np.sqrt(np.clip(w, 0.0, None))
    return np.einsum("nij,nj->ni", U, y)


@io.register_model("DiffusionMapSampler")
class DiffusionMapSampler:
    """A fitted diffusion-map sampler (see the module docstring).

    Attributes: ``eps``, ``beta``, ``noise``, ``scheme``, ``dt``, ``space`` (FeatureSpace),
    ``data`` (the standardized samples, (M, d)), ``weights`` (Sinkhorn ``v``), ``rho``
    (bandwidths), ``attrs`` (parameters, Sinkhorn iterations and residual, kernel truncation).
    Physical units in and out; ``standardized=True`` on the evaluation methods skips the maps.
    """

    def __init__(self, kernel: _Kernel, space: FeatureSpace, attrs: dict, rng=None):
        self._kernel = kernel
        self.space = space
        self.attrs = dict(attrs)
        self._rng = rng if rng is not None else np.random.default_rng()

    # -- properties ---------------------------------------------------------------------------
    eps = property(lambda self: self._kernel.eps)
    beta = property(lambda self: self._kernel.beta)
    noise = property(lambda self: self.attrs["noise"])
    scheme = property(lambda self: self.attrs["scheme"])
    output = property(lambda self: self.attrs.get("output", "mean"))
    dt = property(lambda self: float(self.attrs["dt"]))
    dim = property(lambda self: self._kernel.d)
    n_data = property(lambda self: self._kernel.M)
    data = property(lambda self: self._kernel.X)
    weights = property(lambda self: np.exp(self._kernel.logv))
    rho = property(lambda self: self._kernel.rho)

    def with_options(self, noise=None, scheme=None, dt=None,
                     output=None) -> "DiffusionMapSampler":
        """The same fitted kernel with another sampler (no refit)."""
        attrs = dict(self.attrs)
        if output is not None:
            OneOf(("mean", "noisy")).check("output", output)
            attrs["output"] = output
        if noise is not None:
            OneOf(("data-aware", "constant")).check("noise", noise)
            attrs["noise"] = noise
        if scheme is not None:
            OneOf(("split-step", "langevin")).check("scheme", scheme)
            attrs["scheme"] = scheme
        if dt is not None:
            Interval(0, None, closed="neither").check("dt", dt)
            attrs["dt"] = float(dt)
        elif scheme == "split-step":
            attrs["dt"] = self.eps
        return DiffusionMapSampler(self._kernel, self.space, attrs, self._rng)

    # -- input handling -----------------------------------------------------------------------
    def _states(self, x, standardized):
        """-> (standardized (n, d) array, restore function)."""
        if isinstance(x, (xr.DataArray, xr.Dataset)):
            X = np.asarray(self.space.transform(x, standardize=not standardized), np.float64)
            return X, ("xarray", x)
        X, single = check_states(x, self.dim)
        if not standardized:
            X = self.space.to_standard(X)
        return X, ("single" if single else "array", None)

    def _restore(self, values, how, kind, name):
        tag, like = how
        if tag == "single":
            return values[0]
        if tag == "array":
            return values
        lead, shape, coords = self.space.lead_layout(like)
        if kind == "state":
            out = self.space.states_like(values, like, {"description": name})
            return self.space.match_input(out, like)
        coords.update(self.space.feature_coords("feature_i"))
        coords.update(self.space.feature_coords("feature_j"))
        return xr.DataArray(values.reshape(shape + (self.dim, self.dim)),
                            dims=lead + ["feature_i", "feature_j"], coords=coords, name=name)

    # -- evaluation ---------------------------------------------------------------------------
    def transition_probabilities(self, x, standardized=False):
        """``p_eps(x)`` for states x (n, d): scipy sparse CSR (n, M); rows sum to 1."""
        X, _ = self._states(x, standardized)
        return self._kernel.evaluate(X, probs=True)[3]

    def mean(self, x, standardized=False):
        """``m_eps(x) = X p_eps(x)`` (a convex combination of the data)."""
        X, how = self._states(x, standardized)
        m = self._kernel.evaluate(X)[0]
        return self._restore(m if standardized else self.space.to_physical(m), how, "state",
                             "diffusion-map mean m_eps(x)")

    def covariance(self, x, standardized=False):
        """``C(x) = (X - m 1^T) D(p) (X - m 1^T)^T``, (n, d, d)."""
        X, how = self._states(x, standardized)
        C = self._kernel.evaluate(X, cov=True)[1]
        if not standardized:
            C = self.space.matrix_to_physical(C)
        return self._restore(C, how, "matrix", "covariance")

    def bandwidth(self, x, standardized=False):
        """``rho(x)`` (1 for fixed bandwidth), shape (n,)."""
        X, _ = self._states(x, standardized)
        return self._kernel.kde_rho(X)

    def drift(self, x, standardized=False):
        """``b(x) = (m_eps(x) - x) / eps`` ~ ``K grad log pi + div K`` (per unit sampler time;
        physical: ``S b~``)."""
        X, how = self._states(x, standardized)
        b = (self._kernel.evaluate(X)[0] - X) / self.eps
        if not standardized:
            b = b * self.space.scale
        return self._restore(b, how, "state", "diffusion-map drift")

    def score(self, x, standardized=False):
        """Score estimate ``grad log pi ~ (b(x) - grad rho(x)) / rho(x)
        = b(x) / rho(x) - beta grad log q(x)`` (``b`` for fixed bandwidth); physical units
        ``S^{-1} s~``."""
        X, how = self._states(x, standardized)
        m, _, rz, _ = self._kernel.evaluate(X)
        s = (m - X) / (self.eps * rz[:, None])
        if self.beta != 0.0:
            s -= self.beta * self._kernel.kde_grad_log(X)
        if not standardized:
            s = self.space.score_to_physical(s)
        return self._restore(s, how, "state", "score grad log p")

    __call__ = score

    def bistochastic_matrix(self):
        """``P = D(v) T D(v)`` (scipy sparse CSR, (M, M)) rebuilt from the stored kernel."""
        K = self._kernel
        rng = np.random.default_rng(0)
        X = K.X
        if K.dense:
            Xt = _t(X)
            d2 = _sq_dist_torch(Xt, Xt).numpy()
            np.fill_diagonal(d2, 0.0)
            logT = -d2 / (2.0 * K.eps * (K.rho[:, None] + K.rho[None, :]))
            P = np.exp(logT + K.logv[:, None] + K.logv[None, :])
            return sparse.csr_array(P)
        del rng
        dist, idx = K.tree.query(X, k=K.k, workers=K.workers)
        d2 = dist * dist
        d2[:, 0] = 0.0
        idx[:, 0] = np.arange(K.M)
        rows = np.repeat(np.arange(K.M), K.k)
        cols = idx.ravel()
        vals = np.exp(-d2.ravel() / (2.0 * K.eps * (K.rho[rows] + K.rho[cols]))
                      + K.logv[rows] + K.logv[cols])
        A = sparse.csr_array((vals, (rows, cols)), shape=(K.M, K.M))
        A.sum_duplicates()
        At = A.T.tocsr()
        return A.maximum(At).tocsr()

    # -- sampling -----------------------------------------------------------------------------
    def _resolve_condition(self, condition, n):
        """-> (conditioned feature indices, standardized values (n, c)) or (None, None)."""
        if condition is None or len(condition) == 0:
            return None, None
        labels = self.space.feature_labels()
        names = [l.name for l in self.space.layouts]
        cidx, vals = [], []
        for key, value in dict(condition).items():
            if isinstance(key, (int, np.integer)):
                if not 0 <= int(key) < self.dim:
                    raise DataError(f"condition index {key} out of range for d={self.dim}")
                idx = [int(key)]
            elif key in labels:
                idx = [labels.index(key)]
            elif key in names:
                layout = self.space.layouts[names.index(key)]
                idx = list(range(layout.slice.start, layout.slice.stop))
            else:
                raise DataError(f"unknown condition {key!r}: use a feature index, a label "
                                f"({labels[:6]}...) or a variable name ({names})")
            v = np.asarray(value, dtype=np.float64)
            if v.ndim == 0:
                v = np.full((n, len(idx)), float(v))
            elif v.shape == (len(idx),):
                v = np.broadcast_to(v, (n, len(idx)))
            elif v.shape == (n,) and len(idx) == 1:
                v = v[:, None]
            elif v.shape != (n, len(idx)):
                raise DataError(f"condition {key!r} has shape {v.shape}; give a scalar, "
                                f"({len(idx)},) or ({n}, {len(idx)}) values")
            cidx.extend(idx)
            vals.append(v)
        cidx = np.asarray(cidx)
        if len(set(cidx.tolist())) != cidx.size:
            raise DataError("a feature is conditioned twice")
        if cidx.size >= self.dim:
            raise DataError("every feature is conditioned: nothing left to sample")
        vals = np.concatenate(vals, axis=1)
        vals = (vals - self.space.mean[cidx]) / self.space.scale[cidx]
        return cidx, vals

    def _noise(self, X, free, rng):
        """Noise of the free components: ``sqrt(2 eps K)`` or ``C_ff^{1/2}`` times xi."""
        K = self._kernel
        nf = self.dim if free is None else free.size
        xi = rng.standard_normal((X.shape[0], nf))
        if self.noise == "constant":
            r = K.kde_rho(X)
            return np.sqrt(2.0 * self.eps * r)[:, None] * xi, None
        m, C, r, _ = K.evaluate(X, cov=True)
        if free is not None:
            C = C[:, free[:, None], free[None, :]]
        return _sqrtm_apply(C, xi), m

    def step(self, X, rng, free=None, cidx=None, zc=None):
        """One sampler step of all chains X (n, d), standardized; returns ``(state, output)``:
        the new chain state and the sample it reports (the same array, except for the
        split-step schemes with ``output="noisy"``: the half-step ``x'`` before ``m_eps``).

        ``free``/``cidx``: index arrays of the free and conditioned components; ``zc`` the
        conditioned values (n, c), reset before the step."""
        X = np.array(X, dtype=np.float64)
        if cidx is not None:
            X[:, cidx] = zc
        fsel = slice(None) if free is None else free
        K = self._kernel
        if self.scheme == "split-step":
            noise, _ = self._noise(X, free, rng)
            Xp = X.copy()
            Xp[:, fsel] += noise
            m = K.evaluate(Xp)[0]
            X[:, fsel] = m[:, fsel]
            return X, (Xp if self.output == "noisy" else X)
        # Langevin, dt steps of the drift (m - x)/eps
        h = self.dt / self.eps
        if self.noise == "constant":
            m, _, r, _ = K.evaluate(X)
            xi = rng.standard_normal((X.shape[0], self.dim if free is None else free.size))
            noise = np.sqrt(2.0 * self.dt * r)[:, None] * xi
        else:
            m, C, _, _ = K.evaluate(X, cov=True)
            if free is not None:
                C = C[:, free[:, None], free[None, :]]
            xi = rng.standard_normal((X.shape[0], self.dim if free is None else free.size))
            noise = math.sqrt(h) * _sqrtm_apply(C, xi)
        X[:, fsel] += h * (m[:, fsel] - X[:, fsel]) + noise
        return X, X

    def _init(self, n, init, rng, cidx, zc, standardized):
        if init is not None:
            X0, _ = self._states(np.asarray(init, float).reshape(-1, self.dim)
                                 if not isinstance(init, (xr.DataArray, xr.Dataset)) else init,
                                 standardized)
            if X0.shape[0] == 1:
                X0 = np.repeat(X0, n, axis=0)
            if X0.shape[0] != n:
                raise DataError(f"init has {X0.shape[0]} states for {n} chains")
            return X0.copy()
        if cidx is not None:
            j = self._kernel.draw_conditional(cidx, zc, rng)
        else:
            j = rng.integers(0, self.n_data, n)
        return self._kernel.X[j].copy()

    def _rng_for(self, seed):
        return self._rng if seed is None else np.random.default_rng(seed)

    def run(self, X0, n_steps, rng, free=None, cidx=None, zc=None, save_every=0, burn_in=0):
        """Advance chains X0 (standardized) ``n_steps``; returns the final state, the final
        reported sample (see :meth:`step`) and, with ``save_every > 0``, the reported samples
        (n_saved, n, d) after ``burn_in`` steps."""
        X = out = X0
        saved = []
        for i in range(1, int(n_steps) + 1):
            X, out = self.step(X, rng, free, cidx, zc)
            if save_every and i > burn_in and (i - burn_in) % save_every == 0:
                saved.append(out.copy())
        return X, out, (np.stack(saved) if saved else np.empty((0,) + X.shape))

    def _free(self, cidx):
        if cidx is None:
            return None
        return np.setdiff1d(np.arange(self.dim), cidx)

    def sample(self, n: int, n_steps: int = 200, seed=None, condition=None, init=None,
               as_array: bool = False, standardized: bool = False):
        """``n`` samples: the final states of ``n`` independent chains after ``n_steps``.

        Chains start from random data points (or from ``init``, physical units). ``condition``:
        ``{feature index | label | variable: value(s)}`` in physical units (a scalar, or one
        value per chain). Returns xarray with a ``sample`` dim (``as_array=True``: ndarray
        (n, d), physical units unless ``standardized``).
        """
        n = int(n)
        if n < 1 or int(n_steps) < 0:
            raise ValueError("need n >= 1 and n_steps >= 0")
        rng = self._rng_for(seed)
        cidx, zc = self._resolve_condition(condition, n)
        X = self._init(n, init, rng, cidx, zc, standardized)
        if cidx is not None:
            X[:, cidx] = zc
        _, X, _ = self.run(X, n_steps, rng, self._free(cidx), cidx, zc)
        X = X.copy()
        if cidx is not None:
            X[:, cidx] = zc
        if as_array:
            return X if standardized else self.space.to_physical(X)
        out = self.space.inverse_transform(X, dims=("sample",),
                                           coords={"sample": np.arange(n)})
        out.attrs.update(self._provenance(n_steps, seed, condition))
        return out

    def generate(self, n_steps: int, n_members: int = 1, save_every: int = 1, burn_in: int = 0,
                 init=None, seed=None, condition=None, as_array: bool = False):
        """Sampler trajectories: ``(member, <sample dim>)`` xarray like the fitted data, the
        sample coordinate being the sampler's pseudo-time ``step * dt`` (dt = eps for the
        split-step schemes). ``as_array``: ndarray (n_members, n_saved, d), physical units."""
        if int(save_every) < 1 or int(burn_in) < 0 or int(n_steps) < 1:
            raise ValueError("need n_steps >= 1, save_every >= 1 and burn_in >= 0")
        n = int(n_members)
        rng = self._rng_for(seed)
        cidx, zc = self._resolve_condition(condition, n)
        X = self._init(n, init, rng, cidx, zc, False)
        _, _, saved = self.run(X, n_steps, rng, self._free(cidx), cidx, zc, int(save_every),
                            int(burn_in))
        traj = np.transpose(saved, (1, 0, 2))  # (member, time, d)
        if as_array:
            return self.space.to_physical(traj)
        steps = burn_in + save_every * np.arange(1, traj.shape[1] + 1)
        member = self.space.sequence_dim or "member"
        out = self.space.inverse_transform(
            traj, dims=(member, self.space.sample_dim),
            coords={member: np.arange(n), self.space.sample_dim: steps * self.dt})
        out[self.space.sample_dim].attrs = {"long_name": "sampler pseudo-time (steps * dt)",
                                            "dt": self.dt}
        out.attrs.update(self._provenance(n_steps, seed, condition))
        return out

    def _provenance(self, n_steps, seed, condition):
        return {"generated_by": "xlangevin.DiffusionMapSampler", "scheme": self.scheme,
                "output": self.output,
                "noise": self.noise, "eps": self.eps, "beta": self.beta, "n_steps": int(n_steps),
                "seed": "None" if seed is None else str(seed),
                "condition": json.dumps({str(k): np.asarray(v).tolist()
                                         for k, v in dict(condition or {}).items()})}

    # -- persistence --------------------------------------------------------------------------
    def to_netcdf(self, path):
        """Save the data, Sinkhorn weights, bandwidths and parameters (atomically)."""
        K = self._kernel
        arrays = {"data": K.X, "log_weights": K.logv, "rho": K.rho}
        groups = {"space": self.space.to_dataset(),
                  "kernel": io.arrays_to_dataset(arrays, {"qbar": K.qbar,
                                                                 "qmin": K.qmin})}
        attrs = {k: v for k, v in self.attrs.items() if k != "xlangevin_version"}
        return io.write_groups(path, "DiffusionMapSampler", groups,
                               {"model_attrs": json.dumps(attrs, default=str)})

    @classmethod
    def _from_groups(cls, attrs, groups):
        a = io.dataset_to_arrays(groups["kernel"])
        model_attrs = json.loads(attrs["model_attrs"])
        kernel = _Kernel(a["data"], model_attrs["eps"], model_attrs["beta"],
                         model_attrs["kde_eps"], model_attrs["k_neighbors"], a["log_weights"],
                         a["rho"], float(groups["kernel"].attrs["qbar"]),
                         float(groups["kernel"].attrs["qmin"]))
        seed = model_attrs.get("seed", "None")
        rng = np.random.default_rng(None if seed == "None" else int(seed) + 1)
        return cls(kernel, FeatureSpace.from_dataset(groups["space"]), model_attrs, rng)

    def __repr__(self):
        return (f"<DiffusionMapSampler eps={self.eps:g} beta={self.beta:g} "
                f"scheme={self.scheme!r} noise={self.noise!r} M={self.n_data} d={self.dim} "
                f"k={self.attrs['k_neighbors']} ({self.attrs['k_mode']}) "
                f"variables={self.space.variables}>")


# ------------------------------------------------------------------------------------------
# stochastic subgrid-scale closure (paper §6.3)
# ------------------------------------------------------------------------------------------
def fit_subgrid_closure(z, drift, dt=None, *, eps=0.05, lags=0, beta=0.0, noise="data-aware",
                        n_inner=3, init="data", k_neighbors=None, max_samples=None, dim="time",
                        variables=None, seed=None) -> "SubgridClosure":
    r"""Learn a stochastic closure ``psi`` for a resolved series ``z`` with known drift ``F``.

    Residual increments of each contiguous sequence (members and gaps are never joined):
    ``psi_n = z_{n+1} - z_n - F(z_n) dt``. A diffusion map is fitted to the joint samples
    ``(z_n, psi_{n-1}, ..., psi_{n-lags}, psi_n)``; the closure draws ``psi_n`` from it
    conditionally on ``(z_n, psi_{n-1..n-lags})`` (paper §5), and the surrogate runs
    ``z_{n+1} = z_n + F(z_n) dt + psi_n`` (:meth:`SubgridClosure.simulate`).

    Parameters
    ----------
    z : xarray (sample dim ``dim``, optional member dim, any feature dims) or array (T,) / (T, d).
    drift : callable, physical states (n, d) -> resolved drift (n, d).
    dt : time step of the series (default: the FeatureSpace's sample spacing; 1 for arrays).
    eps, beta, noise, k_neighbors, max_samples, seed : of the joint diffusion map
        (standardized joint units; the split-step scheme).
    lags : number of previous residuals conditioned on (memory of the closure).
    n_inner : conditional split-steps per time step (0 = kernel-weighted resampling only).
    init : "data" (each draw starts from a data point drawn with the kernel weights of the
        conditioning values, independent between steps) or "previous" (from the previous
        draw: a warm start that correlates successive draws unless n_inner is large).
    """
    if init not in ("data", "previous"):
        raise ValueError(f"init must be 'data' or 'previous', got {init!r}")
    if int(lags) < 0 or int(n_inner) < 0:
        raise ValueError("lags and n_inner must be >= 0")
    if isinstance(z, (xr.DataArray, xr.Dataset)):
        obj = z
    else:
        arr = np.asarray(z, dtype=np.float64)
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise DataError(f"z must be (T,) or (T, d), got {np.shape(z)}")
        obj = xr.DataArray(arr, dims=(dim, "feature"), name="z")
    space = FeatureSpace.fit(obj, dim=dim, variables=variables, standardize=False)
    Z = np.asarray(space.transform(obj, standardize=False), dtype=np.float64)
    bounds = space.sequence_bounds(obj)
    if dt is None:
        dt = space.dt if isinstance(z, (xr.DataArray, xr.Dataset)) else 1.0
    dt = float(dt)
    L = int(lags)
    dz = Z.shape[1]
    rows = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e - s < L + 2:
            continue
        zs = Z[s:e]
        F = np.asarray(drift(zs[:-1]), dtype=np.float64).reshape(zs[:-1].shape)
        psi = zs[1:] - zs[:-1] - F * dt
        n = psi.shape[0]
        cols = [zs[L:n]] + [psi[L - l:n - l] for l in range(1, L + 1)] + [psi[L:n]]
        rows.append(np.concatenate(cols, axis=1))
    if not rows:
        raise DataError(f"no sequence is longer than lags + 2 = {L + 2} samples")
    J = np.concatenate(rows, axis=0)
    sampler = DiffusionMap(eps=eps, beta=beta, noise=noise, scheme="split-step",
                           k_neighbors=k_neighbors, max_samples=max_samples,
                           seed=seed).fit(J)
    return SubgridClosure(sampler, drift, dt, dz, L, space, n_inner=n_inner, init=init)


class SubgridClosure:
    """Conditional diffusion-map closure ``psi`` and the surrogate
    ``z_{n+1} = z_n + F(z_n) dt + psi_n`` (see :func:`fit_subgrid_closure`).

    ``sampler`` (a :class:`DiffusionMapSampler` on the joint samples) can be saved with
    ``to_netcdf``; rebuild the closure with ``SubgridClosure(open_model(path), drift, dt, dz,
    lags, space)``.
    """

    def __init__(self, sampler: DiffusionMapSampler, drift, dt, n_resolved, lags, space,
                 n_inner=3, init="data"):
        self.sampler = sampler
        self.drift = drift
        self.dt = float(dt)
        self.n_resolved = int(n_resolved)
        self.lags = int(lags)
        self.space = space
        self.n_inner = int(n_inner)
        self.init = init
        dzl = self.n_resolved * (1 + self.lags)
        self._cidx = np.arange(dzl)
        self._free = np.arange(dzl, dzl + self.n_resolved)

    def sample_increments(self, z, psi_prev=None, seed=None, rng=None, state=None):
        """Draw ``psi`` (n, d) given resolved states ``z`` (n, d) and, with lags, the previous
        residuals ``psi_prev`` (n, lags * d, most recent first); physical units."""
        rng = rng if rng is not None else np.random.default_rng(seed)
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        n = z.shape[0]
        cond = z if self.lags == 0 else np.concatenate(
            [z, np.asarray(psi_prev, np.float64).reshape(n, -1)], axis=1)
        sp = self.sampler.space
        zc = (cond - sp.mean[self._cidx]) / sp.scale[self._cidx]
        if self.init == "data" or state is None:
            X = self.sampler._kernel.X[self.sampler._kernel.draw_conditional(
                self._cidx, zc, rng)].copy()
        else:
            X = np.array(state, dtype=np.float64)
        X[:, self._cidx] = zc
        X, _, _ = self.sampler.run(X, self.n_inner, rng, self._free, self._cidx, zc)
        psi = X[:, self._free] * sp.scale[self._free] + sp.mean[self._free]
        return psi, X

    def simulate(self, n_steps: int, n_members: int = 1, z0=None, seed=None,
                 burn_in: int = 0, as_array: bool = False):
        """Run the surrogate; returns xarray like the fitted ``z`` with a member dim (sample
        coordinate continuing the fitted spacing), or ndarray (n_members, n_steps, d)."""
        rng = np.random.default_rng(seed)
        n = int(n_members)
        d = self.n_resolved
        if z0 is None:
            j = rng.integers(0, self.sampler.n_data, n)
            z = self.sampler.space.to_physical(self.sampler.data[j])[:, :d]
            hist = self.sampler.space.to_physical(self.sampler.data[j])[:, d:d * (1 + self.lags)]
        else:
            z = np.broadcast_to(np.asarray(z0, np.float64).reshape(-1, d), (n, d)).copy()
            hist = np.zeros((n, d * self.lags))
        out = np.empty((n, int(n_steps), d))
        state = None
        for i in range(int(burn_in) + int(n_steps)):
            psi, state = self.sample_increments(z, hist if self.lags else None, rng=rng,
                                                state=state)
            F = np.asarray(self.drift(z), dtype=np.float64).reshape(n, d)
            z = z + F * self.dt + psi
            if self.lags:
                hist = np.concatenate([psi, hist[:, :-d]], axis=1) if self.lags > 1 else psi
            if not np.all(np.isfinite(z)):
                raise FloatingPointError(f"surrogate left the finite range at step {i}")
            if i >= burn_in:
                out[:, i - int(burn_in)] = z
        if as_array:
            return out
        member = self.space.sequence_dim or "member"
        sim = self.space.inverse_transform(
            out, standardized=False, dims=(member, self.space.sample_dim),
            coords={member: np.arange(n),
                    self.space.sample_dim: self.space.sample_coordinate(int(n_steps))})
        sim.attrs.update({"generated_by": "xlangevin.SubgridClosure", "dt": self.dt,
                          "lags": self.lags, "n_inner": self.n_inner, "init": self.init,
                          "eps": self.sampler.eps, "seed": "None" if seed is None else str(seed)})
        return sim

    def __repr__(self):
        return (f"<SubgridClosure d={self.n_resolved} lags={self.lags} dt={self.dt:g} "
                f"n_inner={self.n_inner} init={self.init!r} sampler={self.sampler!r}>")
