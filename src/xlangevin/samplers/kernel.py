r"""The diffusion-map kernel: fit (bandwidths, Sinkhorn weights) and out-of-sample evaluation.

Gottwald, Li, Marzouk & Reich, "Stable generative modeling using diffusion maps". All arrays
here are in the units the sampler learns in (standardized unless ``standardize=False``). With
``K_i = rho_i I``::

    t_ij = exp(-(x_i - x_j)^T (K_i + K_j)^{-1} (x_i - x_j) / (2 eps))
         = exp(-|x_i - x_j|^2 / (2 eps (rho_i + rho_j)))

Fixed bandwidth: ``rho = 1`` (a Gaussian of variance ``2 eps``). Variable bandwidth:
``rho_i = (q_i / mean q)^beta`` with ``beta <= 0`` and the cheap KDE
``q(x) = (1/M) sum_j exp(-|x - x_j|^2 / (4 eps_kde))``, evaluated on the same neighbour lists as
the kernel. The weights ``v`` make ``P = D(v) T D(v)`` bistochastic (:mod:`.sinkhorn`).

Out of sample::

    p_eps(x) = D(v) t(x) / (v^T t(x)),   m_eps(x) = X p_eps(x),
    C(x) = (X - m 1^T) D(p) (X - m 1^T)^T,

with ``t(x)_j`` the kernel between ``x`` (bandwidth ``rho(x)`` from the KDE at ``x``, floored at
the smallest in-sample ``q``) and ``x_j``. In-sample, ``p_eps(x_i) = M P[i]``.

Neighbour lists: for M up to ``DENSE_MAX`` the kernel is dense and exact. Above, or when ``k`` is
given, a k-nearest-neighbour kernel (scipy cKDTree, built once per kernel) is used: the in-sample
kernel is the symmetrised union of the kNN graphs (sparse CSR, about M k entries; the graph is
queried once, at fit, and reused by :meth:`DiffusionKernel.bistochastic`), the out-of-sample
kernel uses the k nearest data points. The automatic k (:func:`_auto_k`) counts, on a pilot of
256 points, the neighbours within the radius where the fixed-bandwidth kernel falls below 1e-6
(capped so that the graph holds at most ~3e7 entries); the largest kernel value cut off is the
``kernel_truncation`` of :func:`fit_kernel`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse
from scipy.spatial import cKDTree

from .sinkhorn import _sinkhorn_log

__all__ = ["DiffusionKernel", "fit_kernel", "DENSE_MAX"]

DENSE_MAX = 4000          # M up to this: exact dense kernel when k_neighbors is None
_PILOT_TOL = 1e-6         # auto k: count neighbours down to this kernel value
_MAX_GRAPH = 30_000_000   # auto k: at most ~this many kernel entries
_CHUNK = 1 << 22          # evaluation chunks: rows * neighbours <= this
_SMALL = 200_000          # dense blocks below this many entries: numpy (no thread pools)
_PARALLEL_QUERY = 2000    # tree queries of at least this many points use all cores


def _t(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _sq_dist_torch(A, B):
    """Squared distances (n, m), torch float64, clamped at 0."""
    d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return d2.clamp_(min=0.0)


def _auto_k(X, tree, eps, rng, workers):
    """k from a pilot count of the neighbours where the fixed-bandwidth kernel is >= 1e-6:
    the 95% quantile over 256 random points, clipped to ``[32, max(64, 3e7 / M)]`` and M."""
    M = X.shape[0]
    idx = rng.choice(M, size=min(M, 256), replace=False)
    radius = math.sqrt(4.0 * eps * math.log(1.0 / _PILOT_TOL))
    counts = tree.query_ball_point(X[idx], radius, return_length=True, workers=workers)
    k = int(np.quantile(counts, 0.95))
    cap = max(64, _MAX_GRAPH // M)
    return int(min(M, max(32, min(k, cap))))


def _knn_graph(tree, X, k, workers):
    """``(d2, idx)``, (M, k): squared distances to and indices of the k nearest data points of
    every data point, self forced into column 0 (duplicates may displace it); read-only."""
    dist, idx = tree.query(X, k=k, workers=workers)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    d2 = dist * dist
    d2[:, 0] = 0.0
    idx[:, 0] = np.arange(X.shape[0])
    d2.setflags(write=False)
    idx.setflags(write=False)
    return d2, idx


class DiffusionKernel:
    """Fitted kernel state and out-of-sample evaluation (module docstring).

    ``X`` (M, d) data, ``eps``, ``beta``, ``kde_eps``, ``k`` (``>= M``: dense), ``logv``
    (Sinkhorn ``log v``), ``rho`` (bandwidths), ``qbar`` (mean in-sample KDE), ``qmin`` (the
    floor of the out-of-sample KDE: ``rho(x) <= max rho_i``). ``tree`` and ``graph`` (the
    in-sample kNN graph of :func:`_knn_graph`) are built on first use unless given.
    """

    def __init__(self, X, eps, beta, kde_eps, k, logv, rho, qbar, qmin, workers=-1, tree=None,
                 graph=None):
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.M, self.d = self.X.shape
        self.eps, self.beta, self.kde_eps = float(eps), float(beta), float(kde_eps)
        self.k = int(k)
        self.dense = self.k >= self.M
        self.logv = np.asarray(logv, np.float64)
        self.rho = np.asarray(rho, np.float64)
        self.qbar = float(qbar)
        self.qmin = float(qmin)
        self.workers = workers
        self._tree = tree
        self._graph = graph
        self._cond_trees = {}
        self._precompute()

    def _precompute(self):
        """Torch/numpy views used by the evaluation: ``[x, x x^T]`` rows (moments), the
        scaled data and the logit bias ``log v_j - |x_j|^2 / (4 eps)`` of the fixed bandwidth."""
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

    def _workers(self, n):
        return self.workers if n >= _PARALLEL_QUERY else 1

    @property
    def tree(self):
        """cKDTree of the data (built once)."""
        if self._tree is None:
            self._tree = cKDTree(self.X)
        return self._tree

    @property
    def graph(self):
        """The in-sample kNN graph ``(d2, idx)`` (queried once: at fit, or on first use)."""
        if self._graph is None:
            self._graph = _knn_graph(self.tree, self.X, self.k, self.workers)
        return self._graph

    def _rows_per_chunk(self):
        width = self.M if self.dense else self.k
        return max(1, _CHUNK // max(width * max(self.d, 4), 1))

    # -- out-of-sample ----------------------------------------------------------------------
    def evaluate(self, Z, cov=False, probs=False, rho_only=False):
        """``(m_eps, C or None, rho, p or None)`` at states Z (n, d), in chunks; ``p`` is a
        scipy sparse CSR (n, M)."""
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        n = Z.shape[0]
        m = np.empty((n, self.d))
        C = np.empty((n, self.d, self.d)) if cov else None
        rz = np.ones(n)
        P = [] if probs else None
        rows = self._rows_per_chunk()
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
        p = _softmax_rows(logw)
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
        p = _softmax_rows(self.logv[idx] - d2 / (2.0 * self.eps * (rz[:, None] + self.rho[idx])))
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
        rows = self._rows_per_chunk()
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

    # -- in-sample -----------------------------------------------------------------------------
    def bistochastic(self):
        """``P = D(v) T D(v)`` (scipy sparse CSR, (M, M)); the kNN form from the stored graph
        (the union of the kNN lists, symmetrised by the entry-wise maximum)."""
        X = self.X
        if self.dense:
            Xt = _t(X)
            d2 = _sq_dist_torch(Xt, Xt).numpy()
            np.fill_diagonal(d2, 0.0)
            logT = -d2 / (2.0 * self.eps * (self.rho[:, None] + self.rho[None, :]))
            return sparse.csr_array(np.exp(logT + self.logv[:, None] + self.logv[None, :]))
        d2, idx = self.graph
        rows = np.repeat(np.arange(self.M), self.k)
        cols = idx.ravel()
        vals = np.exp(-d2.ravel() / (2.0 * self.eps * (self.rho[rows] + self.rho[cols]))
                      + self.logv[rows] + self.logv[cols])
        A = sparse.csr_array((vals, (rows, cols)), shape=(self.M, self.M))
        A.sum_duplicates()
        At = A.T.tocsr()
        return A.maximum(At).tocsr()

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


def _softmax_rows(logw):
    """Row-normalised ``exp(logw)`` (max-shifted in place)."""
    logw -= logw.max(1, keepdims=True)
    p = np.exp(logw)
    p /= p.sum(1, keepdims=True)
    return p


# ------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------
def _bandwidths(q, beta):
    """``rho_i = (q_i / mean q)^beta``."""
    return (q / float(q.mean())) ** beta


def _fit_dense(X, eps, beta, kde_eps, tol, max_iter):
    """Exact dense kernel: ``(rho, q, (u, iterations, residual))``."""
    M = X.shape[0]
    Xt = _t(X)
    d2 = _sq_dist_torch(Xt, Xt)
    d2.fill_diagonal_(0.0)
    if beta != 0.0:
        q = torch.exp(-d2 / (4.0 * kde_eps)).mean(1).numpy()
    else:
        q = np.ones(M)
    rho = _bandwidths(q, beta)
    rt = _t(rho)
    K = torch.exp(d2.div_(-2.0 * eps * (rt[:, None] + rt[None, :]))).numpy()
    del d2
    return rho, q, _sinkhorn_log(K, M, tol, max_iter)


def _symmetric_log_kernel(d2, idx, rho, eps):
    """The symmetrised union of the kNN lists as a CSR log-kernel ``(indptr, cols, log t)``:
    each unordered pair once (its first occurrence), mirrored off the diagonal, rows sorted."""
    M, k = idx.shape
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
    return indptr, Cc, -D / (2.0 * eps * (rho[R] + rho[Cc]))


def _fit_knn(graph, eps, beta, kde_eps, tol, max_iter):
    """kNN kernel on ``graph`` (:func:`_knn_graph`): ``(rho, q, (u, iterations, residual),
    truncation, nnz)``; truncation = the largest kernel value at a k-th (farthest kept)
    neighbour, what the cut may miss."""
    d2, idx = graph
    M = idx.shape[0]
    if beta != 0.0:
        q = np.exp(-d2 / (4.0 * kde_eps)).sum(1) / M
    else:
        q = np.ones(M)
    rho = _bandwidths(q, beta)
    logK = _symmetric_log_kernel(d2, idx, rho, eps)
    solution = _sinkhorn_log(logK, M, tol, max_iter)
    far = -d2[:, -1] / (2.0 * eps * (rho + rho[idx[:, -1]]))
    return rho, q, solution, float(np.exp(far.max())), int(logK[0][-1])


def fit_kernel(X, eps, beta, kde_eps, k, tol, max_iter, tree=None, workers=-1):
    """Fit the kernel on data X (M, d): bandwidths ``rho``, Sinkhorn weights; dense for
    ``k >= M``. Returns ``(DiffusionKernel, info)`` with ``info`` = ``sinkhorn_iterations``,
    ``sinkhorn_residual``, ``kernel_truncation`` (0 for dense) and, for kNN, ``nnz``."""
    M = X.shape[0]
    info = {}
    graph = None
    if k >= M:
        rho, q, (u, n_iter, res) = _fit_dense(X, eps, beta, kde_eps, tol, max_iter)
        truncation = 0.0
    else:
        tree = cKDTree(X) if tree is None else tree
        graph = _knn_graph(tree, X, k, workers)
        rho, q, (u, n_iter, res), truncation, info["nnz"] = _fit_knn(graph, eps, beta,
                                                                     kde_eps, tol, max_iter)
    info.update(sinkhorn_iterations=n_iter, sinkhorn_residual=res,
                kernel_truncation=truncation)
    kernel = DiffusionKernel(X, eps, beta, kde_eps, k, u, rho, float(q.mean()), float(q.min()),
                             workers, tree=tree, graph=graph)
    return kernel, info
