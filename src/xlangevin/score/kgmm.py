"""KGMM: score estimation by a k-means Gaussian-mixture average and a network interpolator.

Paper 000 / METHODS.md §2. In standardized units, with data ``y ~ p`` and ``x = y + sigma z``:

    s_sigma(x) = -E[z | x] / sigma,
    div s_sigma(x) = (E[|z|^2 | x] - d) / sigma^2 - |s_sigma(x)|^2.

Algorithm: build the bisecting k-means partition on one noisy draw of (a subsample of) the data;
then passes over the data, each with fresh noise, assigning ``x`` to cells by tree descent and
accumulating per cell ``sum z``, ``sum x``, ``sum |z|^2`` and counts. The estimates are the
count-weighted cumulative means; passes stop when ``|E_i - E_{i-1}|_F^2 / |E_i|_F^2 < tol``.
Cell centre = mean of the noisy ``x`` in the cell; cell score ``q_k = -mean_z_k / sigma``; standard
error ``sqrt(var(z)/n_k) / sigma`` with var(z) the per-component variance averaged over components.
Finally an MLP ``eps(x)`` is fitted to ``(centre_k, mean_z_k)`` with loss weights ``n_k``:
``sum_k n_k |eps(c_k) - mean_z_k|^2 / (d sum_k n_k)``, and the score is ``-eps(x) / sigma``.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..backends import resolve_backend
from ..base import Estimator, Flag, Interval, OneOf, Seed, Sizes, provenance
from ..partition import BisectingPartition
from .cells import kgmm_cell_statistics
from .interpolate import fit_interpolator
from .model import NoiseToScore, ScoreModel

__all__ = ["KGMM"]


class KGMM(Estimator):
    """KGMM score estimator (see module docstring).

    Parameters
    ----------
    sigma : smoothing scale in standardized units (the model is the score of p_sigma).
    p_min : minimum cell probability of the partition (N_C ~= 0.7 / p_min); default
        ``max(1e-3, 20 / n)``.
    n_clusters : alternative to ``p_min``: sets ``p_min = 0.7 / n_clusters``.
    tol, stderr_tol, max_passes, min_passes : convergence rule of the passes (relative change of
        the cell means below ``tol`` and, if given, their count-weighted relative standard error
        below ``stderr_tol``).
    antithetic : use the noise pairs (z, -z) in every pass (variance reduction, unbiased).
    chunk_size : samples per noise/assignment chunk (bounds memory).
    hidden, epochs, batch_size, learning_rate, validation_fraction, patience : interpolator
        (MLP d -> 128 -> 64 -> d, swish; Adam; ``epochs=None`` ~ 3x10^4 steps; early stopping
        on held-out cells when there are at least 50 cells).
    dim, variables, dtype : data-layer options for xarray input.
    backend : kernel backend (None = numba for host arrays, cupy for cupy arrays).
    seed : seeds every random draw (noise, partition, network); same seed -> same model.
    progress : progress bars.
    """

    sigma: float = 0.05
    p_min: float | None = None
    n_clusters: int | None = None
    tol: float = 1e-2
    stderr_tol: float | None = 0.05
    max_passes: int = 150
    min_passes: int = 2
    antithetic: bool = True
    chunk_size: int = 1 << 18
    hidden: tuple = (128, 64)
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    patience: int = 300
    dim: str = "time"
    variables: object = None
    dtype: object = np.float64
    backend: str | None = None
    seed: int | None = None
    progress: bool = True

    _constraints = {
        "sigma": Interval(0, None, closed="neither"),
        "p_min": Interval(0, 0.5, closed="right", optional=True),
        "n_clusters": Interval(2, None, integer=True, optional=True),
        "tol": Interval(0, None, closed="neither"),
        "stderr_tol": Interval(0, None, closed="neither", optional=True),
        "max_passes": Interval(1, None, integer=True),
        "min_passes": Interval(1, None, integer=True),
        "antithetic": Flag(),
        "chunk_size": Interval(1, None, integer=True),
        "hidden": Sizes(),
        "epochs": Interval(1, None, integer=True, optional=True),
        "batch_size": Interval(1, None, integer=True),
        "learning_rate": Interval(0, None, closed="neither"),
        "validation_fraction": Interval(0, 0.5, closed="left"),
        "patience": Interval(1, None, integer=True),
        "dtype": OneOf((np.float32, np.float64, "float32", "float64")),
        "seed": Seed(),
    }

    def _check(self) -> None:
        if self.p_min is not None and self.n_clusters is not None:
            raise ValueError("give either p_min or n_clusters, not both")
        resolve_backend(None, self.backend)

    def _data_options(self) -> dict:
        return {"dtype": np.dtype(self.dtype)}

    def _resolve_p_min(self, n):
        if self.n_clusters is not None:
            p_min = 0.7 / self.n_clusters
        elif self.p_min is not None:
            p_min = float(self.p_min)
        else:
            p_min = max(1e-3, 20.0 / n)
        if p_min < 10.0 / n:
            raise ValueError(f"p_min = {p_min:.3g} asks for cells of fewer than 10 samples with "
                             f"n = {n}; use p_min >= {10.0 / n:.3g} (n_clusters <= "
                             f"{int(0.07 * n)}) or more data")
        return p_min

    def _fit(self, features) -> ScoreModel:
        features = features.as_dtype(self.dtype)
        Y, (n, d) = features.X, features.X.shape
        rng = np.random.default_rng(self.seed)
        p_min = self._resolve_p_min(n)
        partition = self._noisy_partition(Y, p_min, rng)
        stats = kgmm_cell_statistics(Y, self.sigma, partition, rng, tol=self.tol,
                                     stderr_tol=self.stderr_tol, max_passes=self.max_passes,
                                     min_passes=self.min_passes, antithetic=self.antithetic,
                                     chunk_size=self.chunk_size, backend=self.backend,
                                     progress=self.progress)
        filled = stats["count"] > 0
        self._warn_on(stats, filled)
        net, history = fit_interpolator(
            stats["centre"][filled], stats["mean_z"][filled], stats["count"][filled],
            hidden=self.hidden, epochs=self.epochs, batch_size=self.batch_size,
            learning_rate=self.learning_rate, validation_fraction=self.validation_fraction,
            patience=self.patience, seed=int(rng.integers(2**31)), progress=self.progress)
        final = stats["rel_change"][-1] if len(stats["rel_change"]) else float("nan")
        attrs = provenance(
            self, p_min=p_min, n_cells=int(filled.sum()), passes=int(stats["passes"]),
            final_rel_change=float(final), final_rel_stderr=float(stats["rel_stderr"][-1]),
            interpolator_epochs=int(history["epochs"]),
            interpolator_validation_loss=float(history["best_validation"]), n_samples=int(n))
        return ScoreModel(NoiseToScore(net, self.sigma), features.space, self.sigma, "kgmm",
                          cells=self._cells_dataset(features.space, stats, filled, d),
                          attrs=attrs, history={"rel_change": stats["rel_change"],
                                                "rel_stderr": stats["rel_stderr"], **history})

    def _noisy_partition(self, Y, p_min, rng):
        """The partition, built on one noisy draw of (a subsample of) the data."""
        n = Y.shape[0]
        tree_n = min(n, int(np.ceil(100.0 / p_min)))
        rows = np.sort(rng.choice(n, size=tree_n, replace=False)) if tree_n < n else slice(None)
        tree_data = np.asarray(Y[rows])
        tree_data = tree_data + self.sigma * rng.standard_normal(tree_data.shape)
        return BisectingPartition(p_min=p_min, seed=int(rng.integers(2**31))).fit(
            tree_data.astype(Y.dtype))

    def _warn_on(self, stats, filled):
        """Warnings for sparse cells and unconverged passes."""
        per_cell = (np.median(stats["count"][filled])
                    / (stats["passes"] * (2 if self.antithetic else 1)))
        if per_cell < 20:
            warnings.warn(f"the median cell holds {per_cell:.1f} samples per pass: the cell "
                          "averages are noisy; increase p_min (fewer cells) or use more data",
                          stacklevel=4)
        rel = stats["rel_change"][-1] if len(stats["rel_change"]) else float("nan")
        converged = (len(stats["rel_change"]) and rel < self.tol
                     and (self.stderr_tol is None or stats["rel_stderr"][-1] < self.stderr_tol))
        if not converged:
            warnings.warn(f"KGMM passes did not converge in max_passes={self.max_passes} "
                          f"(relative change {rel:.2g}, relative standard error "
                          f"{stats['rel_stderr'][-1]:.2g}); raise max_passes, loosen "
                          "tol/stderr_tol, or use fewer cells", stacklevel=4)

    def _cells_dataset(self, space, stats, filled, d):
        """Per-cell estimates in physical units as an xr.Dataset over (cell, feature)."""
        sigma = self.sigma
        mean_z = stats["mean_z"][filled]
        count = stats["count"][filled]
        score_std = -mean_z / sigma
        se_std = stats["stderr_z"][filled] / sigma
        div_std = (stats["mean_z2"][filled] - d) / sigma**2 - np.sum(score_std**2, axis=1)
        coords = {"cell": np.arange(int(filled.sum()))}
        coords.update(space.feature_coords("feature"))
        return xr.Dataset(
            {
                "centre": (("cell", "feature"), space.to_physical(stats["centre"][filled]),
                           {"long_name": "mean of the noisy samples in the cell"}),
                "cell_score": (("cell", "feature"), space.score_to_physical(score_std),
                          {"long_name": "cell score -mean(z)/sigma (physical units)"}),
                "stderr": (("cell", "feature"),
                           space.score_to_physical(np.repeat(se_std[:, None], d, axis=1)),
                           {"long_name": "standard error of the cell score"}),
                "count": (("cell",), count, {"long_name": "noisy samples over all passes"}),
                "divergence_std": (("cell",), div_std,
                                   {"long_name": "moment estimate of div s (standardized units)"}),
            },
            coords=coords, attrs={"sigma": sigma, "passes": int(stats["passes"])})
