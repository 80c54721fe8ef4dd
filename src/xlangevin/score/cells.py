"""KGMM's per-cell statistics: passes of noisy samples accumulated per cell (METHODS.md §2).

In standardized units, with data ``y ~ p`` and ``x = y + sigma z``, the cell averages of ``z``
estimate ``E[z | x]``, hence the score ``s_sigma = -E[z | x] / sigma`` and, with ``E[|z|^2 | x]``,
its divergence (Giorgini et al., "KGMM: a k-means clustering approach to Gaussian mixture
modeling for score function estimation"). The sums of a chunk come from the registered kernel
``"accumulate_cells"`` (:mod:`xlangevin.backends.cells`); they add up over chunks and passes.
"""

from __future__ import annotations

import numpy as np

from ..backends import import_cupy, kernel, resolve_backend
from ..data import is_dask
from ..progress import bar as progress_bar

__all__ = ["kgmm_cell_statistics", "cell_means"]


class _Sums:
    """Running per-cell sums over passes (float64), also per block of consecutive samples."""

    def __init__(self, K, d, n_blocks=1):
        self.count = np.zeros(K, np.int64)
        self.sum_z, self.sum_x = np.zeros((K, d)), np.zeros((K, d))
        self.sum_z2 = np.zeros(K)
        self.pass_sq = np.zeros(K)  # sum over passes of count_p |mean_z_p|^2
        self.passes_seen = np.zeros(K, np.int64)
        self.block_count = np.zeros((n_blocks, K), np.int64)  # over all passes
        self.block_z = np.zeros((n_blocks, K, d))

    def add_pass(self, c_p, z_p):
        self.count += c_p
        self.sum_z += z_p
        hit = c_p > 0
        self.pass_sq[hit] += np.sum(z_p[hit] ** 2, axis=1) / c_p[hit]
        self.passes_seen += hit

    def mean_z(self):
        E = np.zeros_like(self.sum_z)
        filled = self.count > 0
        E[filled] = self.sum_z[filled] / self.count[filled, None]
        return E

    def stderr(self):
        """Standard error of one component of the cumulative mean of z per cell, from the
        count-weighted spread of the per-pass means (NaN for cells seen in fewer than 2
        passes)."""
        d = self.sum_z.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_sq = np.sum(self.sum_z**2, axis=1) / self.count**2
            spread = np.maximum(self.pass_sq / self.count - mean_sq, 0.0) / d
            return np.where(self.passes_seen > 1,
                            np.sqrt(spread / (self.passes_seen - 1)), np.nan)

    def block_stderr(self):
        """Standard error of one component of the cumulative mean of z per cell from the spread
        between blocks of consecutive samples (the delta-method variance of a ratio of block
        sums): it holds the data noise (which sample lands near which face), which the spread
        between passes cannot see, as well as the noise of the draws. NaN for a cell seen in
        fewer than 2 blocks."""
        G, d = self.block_count.shape[0], self.sum_z.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sum_z / self.count[:, None]
            resid = self.block_z - mean[None] * self.block_count[:, :, None]
            var = G / (G - 1) * np.sum(resid**2, axis=(0, 2)) / d / self.count.astype(float)**2
            seen = np.sum(self.block_count > 0, axis=0)
            return np.where((seen > 1) & (G > 1), np.sqrt(var), np.nan)

    def relative_stderr(self, E, se=None):
        """Count-weighted relative standard error of the cell means (of the pass-to-pass
        standard errors unless ``se`` is given)."""
        se = self.stderr() if se is None else se
        ok = (self.count > 0) & np.isfinite(se)
        d = E.shape[1]
        return float(np.sqrt(np.sum(self.count[ok] * se[ok] ** 2 * d)
                             / max(np.sum(self.count[ok, None] * E[ok] ** 2), 1e-300)))


def _one_pass(Y, sigma, partition, draw, sums, signs, chunk_size, backend, to_device):
    """One pass over ``Y``: fresh noise for every sample, sums added to ``sums`` (the sums of
    z and the counts also per block of consecutive samples)."""
    n, d = Y.shape
    K = partition.n_cells
    G = sums.block_count.shape[0]
    bounds = [(g * n) // G for g in range(G + 1)]
    accumulate = kernel("accumulate_cells", backend)
    c_p, z_p = np.zeros(K, np.int64), np.zeros((K, d))
    for start in range(0, n, chunk_size):
        y = Y[start:start + chunk_size]
        y = to_device(np.asarray(y.compute()) if is_dask(y) else y)
        stop = start + y.shape[0]
        z = draw(y.shape)
        for sign in signs:
            zs = z if sign > 0 else -z
            x = y + Y.dtype.type(sigma) * zs
            labels = partition.assign(x, backend=backend, check_finite=False)
            for g in range(G):  # the blocks that overlap this chunk
                lo, hi = max(bounds[g], start) - start, min(bounds[g + 1], stop) - start
                if hi <= lo:
                    continue
                c, sz, sx, sz2 = accumulate(labels[lo:hi], zs[lo:hi], x[lo:hi], K)
                sums.block_count[g] += c
                sums.block_z[g] += sz
                c_p += c
                z_p += sz
                sums.sum_x += sx
                sums.sum_z2 += sz2
    sums.add_pass(c_p, z_p)


def _noise(rng, backend, dtype):
    """``(draw(shape), to_device(y))``: host normals from ``rng``, or device normals from a
    cupy generator seeded by ``rng`` for the cupy backend."""
    if backend != "cupy":
        return (lambda shape: rng.standard_normal(shape, dtype=dtype)), (lambda y: y)
    xp = import_cupy()
    gpu_rng = xp.random.default_rng(int(rng.integers(2**63)))
    return (lambda shape: gpu_rng.standard_normal(shape, dtype=dtype)), xp.asarray


def kgmm_cell_statistics(Y, sigma, partition, rng, tol=1e-2, stderr_tol=None, max_passes=150,
                         min_passes=2, antithetic=True, chunk_size=1 << 18, backend=None,
                         progress=True, mc_tol=None, n_blocks=10):
    """The KGMM passes over standardized data ``Y`` (numpy or dask, (n, d)).

    Each pass draws fresh ``z`` for every sample; with ``antithetic`` both ``y + sigma z`` and
    ``y - sigma z`` are used (each is a valid draw, so the estimate stays unbiased, and pairs that
    land in the same cell cancel exactly, which removes most of the noise of interior points).
    Passes stop after ``min_passes`` once the relative change of the cumulative mean ``E`` of z
    is below ``tol`` and, if ``stderr_tol`` is given, the count-weighted relative standard error
    of the cell means is below it and, if ``mc_tol`` is given, the Monte Carlo (pass-to-pass)
    standard error is at most ``mc_tol`` times the total standard error (count-weighted RMS over
    the cells): more passes could then lower the total error by at most ~mc_tol^2 / 2.

    The total standard error ``block_stderr_z`` comes from the spread between ``n_blocks``
    blocks of consecutive samples (delta method for the ratio sum z / count): unlike the
    spread between passes it holds the data noise -- which data lie within ~sigma of a cell's
    faces -- that no number of passes removes, and for a correlated record it holds the
    correlation as long as it is shorter than a block.

    Returns a dict with per-cell ``count``, ``centre`` (mean noisy x), ``mean_z``, ``mean_z2``
    (mean |z|^2), ``stderr_z`` (standard error of a component of mean_z, from the spread between
    passes), ``block_stderr_z`` (the total one, from the spread between blocks) and its
    count-weighted relative value ``rel_total_stderr``, the number of passes, and the histories
    ``rel_change``, ``rel_stderr`` and ``mc_ratio``.
    """
    sums = _Sums(partition.n_cells, Y.shape[1], max(1, min(int(n_blocks), Y.shape[0])))
    backend = resolve_backend(Y, backend)
    draw, to_device = _noise(rng, backend, Y.dtype)
    signs = (1.0, -1.0) if antithetic else (1.0,)
    history, se_history, mc_history, previous = [], [], [], None
    bar = progress_bar(total=max_passes, progress=progress, desc="KGMM passes", leave=False)
    try:
        for i in range(max_passes):
            _one_pass(Y, sigma, partition, draw, sums, signs, chunk_size, backend, to_device)
            E = sums.mean_z()
            se_history.append(sums.relative_stderr(E))
            mc_history.append(_mc_ratio(sums))
            if previous is not None:
                history.append(float(np.sum((E - previous) ** 2) / max(np.sum(E**2), 1e-300)))
                bar.set_postfix(rel_change=f"{history[-1]:.2e}",
                                rel_stderr=f"{se_history[-1]:.2e}")
            previous = E
            bar.update(1)
            if (i + 1 >= min_passes and history and history[-1] < tol
                    and (stderr_tol is None or se_history[-1] < stderr_tol)
                    and (mc_tol is None or mc_history[-1] <= mc_tol)):
                break
    finally:
        bar.close()
    return {**cell_means(sums.count, sums.sum_z, sums.sum_x, sums.sum_z2),
            "stderr_z": sums.stderr(), "block_stderr_z": sums.block_stderr(), "passes": i + 1,
            "rel_total_stderr": sums.relative_stderr(sums.mean_z(), sums.block_stderr()),
            "rel_change": np.asarray(history), "rel_stderr": np.asarray(se_history),
            "mc_ratio": np.asarray(mc_history)}


def _mc_ratio(sums) -> float:
    """Count-weighted RMS of the pass-to-pass standard errors over that of the block ones
    (inf until both are defined)."""
    se_mc, se_all = sums.stderr(), sums.block_stderr()
    ok = np.isfinite(se_mc) & np.isfinite(se_all)
    if not ok.any():
        return float("inf")
    w = sums.count[ok]
    return float(np.sqrt(np.sum(w * se_mc[ok] ** 2) / max(np.sum(w * se_all[ok] ** 2), 1e-300)))


def cell_means(count, sum_z, sum_x, sum_z2) -> dict:
    """Per-cell means from the sums (NaN for empty cells): ``count``, ``centre`` (mean x),
    ``mean_z`` and ``mean_z2`` (mean |z|^2)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "centre": sum_x / count[:, None],
                "mean_z": sum_z / count[:, None], "mean_z2": sum_z2 / count}
