"""KGMM: score estimation by a k-means Gaussian-mixture average and a network interpolator.

Paper 000 / METHODS.md §2. In standardized units, with data ``y ~ p`` and ``x = y + sigma z``:

    s_sigma(x) = -E[z | x] / sigma,
    div s_sigma(x) = (E[|z|^2 | x] - d) / sigma^2 - |s_sigma(x)|^2.

Algorithm: build the bisecting k-means partition on one noisy draw of (a subsample of) the data;
then passes over the data, each with fresh noise, assigning ``x`` to cells by tree descent and
accumulating per cell ``sum z``, ``sum x``, ``sum |z|^2`` and counts. The estimates are the
count-weighted cumulative means; passes stop when ``|E_i - E_{i-1}|_F^2 / |E_i|_F^2 < tol`` and
the Monte Carlo (pass-to-pass) standard error of the cell means is at most ``mc_tol`` times their
total standard error (from the spread between blocks of consecutive samples, which holds the data
noise as well). Cell centre = mean of the noisy ``x`` in the cell; cell score
``q_k = -mean_z_k / sigma``; standard error ``sqrt(var(z)/n_k) / sigma`` with var(z) the
per-component variance averaged over components. Finally an MLP ``eps(x)`` is fitted to
``(centre_k, mean_z_k)`` with loss weights ``n_k``:
``sum_k n_k |eps(c_k) - mean_z_k|^2 / (d sum_k n_k)``, and the score is ``-eps(x) / sigma``.
By default (``epochs=None``) the MLP is trained full-batch on targets scaled to unit RMS and
stopped at the end of the fast phase of its loss, after at most ``140 / rho^2`` steps with
``rho`` the relative total standard error of the cell means (:mod:`.interpolate`).

At ~10^3 samples the cell means are dominated by data noise (rho ~ 0.7), which no number of
passes removes; what decides the accuracy is then how the MLP is stopped
(docs/kgmm_small_samples.md). ``sigma=None`` and ``p_min=None`` follow the rules of
:meth:`KGMM.auto_sigma` and :meth:`KGMM.auto_p_min`.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..backends import resolve_backend
from ..base import Estimator, Flag, Interval, OneOf, Seed, Sizes, provenance
from ..data.checks import require_samples
from ..partition import BisectingPartition
from .cells import kgmm_cell_statistics
from .interpolate import fit_interpolator
from .model import NoiseToScore, ScoreModel

__all__ = ["KGMM"]

#: the interpolator's step budget is STEPS_PER_NOISE / rho^2 (rho: relative noise of the cells);
#: calibrated on 1-D records of 10^3 to 10^5 samples (docs/kgmm_small_samples.md)
STEPS_PER_NOISE = 140.0
#: the automatic p_min puts ~CELL_SAMPLES samples in a cell (``p_min = CELL_SAMPLES / n``)
CELL_SAMPLES = 20
#: the fewest samples for the automatic p_min: ``p_min = 20 / n = 0.1`` gives about 7 cells
#: (``N_C ~ 0.7 / p_min``) of ~20 samples; fewer cells cannot shape a score, and below 40
#: samples the rule would ask for ``p_min > 0.5``, i.e. no partition at all
MIN_SAMPLES = 200
#: the fewest samples with a given p_min / n_clusters: two cells of at least 10 samples
MIN_SAMPLES_GIVEN = 20
#: why :data:`MIN_SAMPLES`, and why :data:`MIN_SAMPLES_GIVEN` (the DataError messages)
AUTO_WHY = (f"with the automatic p_min = {CELL_SAMPLES}/n it averages the data over cells of "
            f"~{CELL_SAMPLES} samples and needs about 7 cells (N_C ~ 0.7/p_min = 0.035 n) to "
            "shape a score; or pass p_min / n_clusters to choose the cells")
GIVEN_WHY = "its partition needs at least two cells of at least 10 samples"


def _p_min_rule(n: int) -> float:
    """``max(1e-3, 20 / n)``, the formula of :meth:`KGMM.auto_p_min` (without its check)."""
    return max(1e-3, CELL_SAMPLES / n)


class KGMM(Estimator):
    """KGMM score estimator (see module docstring).

    Parameters
    ----------
    sigma : smoothing scale in standardized units (the model is the score of p_sigma);
        None (default): ``KGMM.auto_sigma(n, d)``.
    p_min : minimum cell probability of the partition (N_C ~= 0.7 / p_min); None (default):
        ``KGMM.auto_p_min(n, d)``.
    n_clusters : alternative to ``p_min``: sets ``p_min = 0.7 / n_clusters``.
    tol, stderr_tol, mc_tol, max_passes, min_passes : convergence rule of the passes: relative
        change of the cell means below ``tol``, the Monte Carlo standard error of the cell means
        at most ``mc_tol`` times their total standard error (None: no such demand) and, if
        given, their count-weighted relative Monte Carlo standard error below ``stderr_tol``.
    antithetic : use the noise pairs (z, -z) in every pass (variance reduction, unbiased).
    chunk_size : samples per noise/assignment chunk (bounds memory).
    hidden, epochs, batch_size, learning_rate, validation_fraction, patience : interpolator
        (MLP d -> 128 -> 64 -> d, swish; Adam on targets scaled to unit RMS).
        ``epochs=None`` (default): full-batch steps on all cells until the loss falls by less
        than 1% over 100 steps, at most ``140 / rho^2`` steps (200 to 3x10^4; ``rho`` = the
        relative total standard error of the cell means); ``batch_size``,
        ``validation_fraction`` and ``patience`` are then unused. ``epochs=<int>``:
        mini-batches of ``batch_size`` (None: 32) for at most that many epochs, early stopping
        on held-out cells when there are at least 50 cells.
    dim, variables, dtype : data-layer options for xarray input.
    backend : kernel backend (None = numba for host arrays, cupy for cupy arrays).
    seed : seeds every random draw (noise, partition, network); same seed -> same model.
    progress : progress bars.
    """

    sigma: float | None = None
    p_min: float | None = None
    n_clusters: int | None = None
    tol: float = 1e-2
    stderr_tol: float | None = None
    mc_tol: float | None = 0.35
    max_passes: int = 300
    min_passes: int = 2
    antithetic: bool = True
    chunk_size: int = 1 << 18
    hidden: tuple = (128, 64)
    epochs: int | None = None
    batch_size: int | None = None
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
        "sigma": Interval(0, None, closed="neither", optional=True),
        "p_min": Interval(0, 0.5, closed="right", optional=True),
        "n_clusters": Interval(2, None, integer=True, optional=True),
        "tol": Interval(0, None, closed="neither"),
        "stderr_tol": Interval(0, None, closed="neither", optional=True),
        "mc_tol": Interval(0, 1, closed="right", optional=True),
        "max_passes": Interval(1, None, integer=True),
        "min_passes": Interval(1, None, integer=True),
        "antithetic": Flag(),
        "chunk_size": Interval(1, None, integer=True),
        "hidden": Sizes(),
        "epochs": Interval(1, None, integer=True, optional=True),
        "batch_size": Interval(1, None, integer=True, optional=True),
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

    @staticmethod
    def auto_p_min(n: int, d: int) -> float:
        """The default minimum cell probability: ``max(1e-3, 20 / n)``, i.e.
        ``N_C ~= min(700, 0.035 n)`` cells of >= ~20 samples (the median cell holds ~28).
        Measured at n = 2000 (docs/kgmm_small_samples.md): the cells then carry the data's
        information on the score (a cubic fitted to them is as accurate as cubic score
        matching on the raw samples); fewer, heavier cells were worse. Raises
        :class:`~xlangevin.data.DataError` below :data:`MIN_SAMPLES` (200) samples: the rule
        then gives fewer than ~7 cells (and above 0.5, no partition, below 40 samples)."""
        require_samples(n, MIN_SAMPLES, "KGMM", AUTO_WHY)
        return _p_min_rule(n)

    def sample_requirement(self) -> tuple:
        """``(fewest samples, why)`` for this estimator: :data:`MIN_SAMPLES` (200) with the
        automatic p_min, :data:`MIN_SAMPLES_GIVEN` (20: two cells of 10) with p_min or
        n_clusters given."""
        if self.p_min is None and self.n_clusters is None:
            return MIN_SAMPLES, AUTO_WHY
        return MIN_SAMPLES_GIVEN, GIVEN_WHY

    @classmethod
    def auto_sigma(cls, n: int, d: int) -> float:
        """The default smoothing scale (standardized units): ``max(0.05, N_C^(-1/d))`` with
        ``N_C = 0.7 / auto_p_min(n, d)``. The paper's 0.05 unless the cells are so wide that
        sigma would be small against them (N_C ~ sigma^-d, Giorgini et al. Eq. 11): the
        cells of the bulk (~3.5 standardized units across per dimension) are then ~3.5
        sigma wide. In 1-D this is always 0.05 (measured best at n = 10^3 to 10^5); in 2-D
        0.12 at n = 2000 and 0.05 from n = 10^4; in 3-D/4-D 0.11/0.19 at n >= 2x10^4."""
        n_cells = 0.7 / _p_min_rule(n)  # also for a short record with p_min given
        return float(max(0.05, n_cells ** (-1.0 / d)))

    def _resolve_sigma(self, n, d):
        return float(self.sigma) if self.sigma is not None else self.auto_sigma(n, d)

    def _resolve_p_min(self, n, d=1):
        if self.n_clusters is None and self.p_min is None:
            return self.auto_p_min(n, d)  # DataError first when the record is too short
        require_samples(n, MIN_SAMPLES_GIVEN, "KGMM", GIVEN_WHY)
        p_min = 0.7 / self.n_clusters if self.n_clusters is not None else float(self.p_min)
        if p_min < 10.0 / n:
            raise ValueError(f"p_min = {p_min:.3g} asks for cells of fewer than 10 samples with "
                             f"n = {n}; use p_min >= {10.0 / n:.3g} (n_clusters <= "
                             f"{int(0.07 * n)}) or more data")
        return p_min

    def _fit(self, features) -> ScoreModel:
        features = features.as_dtype(self.dtype)
        Y, (n, d) = features.X, features.X.shape
        rng = np.random.default_rng(self.seed)
        p_min = self._resolve_p_min(n, d)  # first: it checks the record's length
        sigma = self._resolve_sigma(n, d)
        partition = self._noisy_partition(Y, sigma, p_min, rng)
        stats = kgmm_cell_statistics(Y, sigma, partition, rng, tol=self.tol,
                                     stderr_tol=self.stderr_tol, mc_tol=self.mc_tol,
                                     max_passes=self.max_passes, min_passes=self.min_passes,
                                     antithetic=self.antithetic, chunk_size=self.chunk_size,
                                     backend=self.backend, progress=self.progress)
        filled = stats["count"] > 0
        self._warn_on(stats, filled)
        auto = self.epochs is None
        net, history = fit_interpolator(
            stats["centre"][filled], stats["mean_z"][filled], stats["count"][filled],
            hidden=self.hidden, epochs=self.epochs,
            batch_size=32 if self.batch_size is None else self.batch_size,
            learning_rate=self.learning_rate, validation_fraction=self.validation_fraction,
            patience=self.patience, seed=int(rng.integers(2**31)), progress=self.progress,
            stop="plateau" if auto else "patience", scale_targets=True,
            max_steps=self._step_budget(stats["rel_total_stderr"]))
        if auto and not history["plateau"] and history["epochs"] >= 30_000:
            warnings.warn(f"the KGMM interpolator's loss still fell by >= 1% per 100 steps "
                          f"after {history['epochs']} steps; the fit may be unfinished: pass "
                          "epochs=<int> (early stopping on held-out cells) or use more data",
                          stacklevel=3)
        final = stats["rel_change"][-1] if len(stats["rel_change"]) else float("nan")
        attrs = provenance(
            self, p_min=p_min, sigma_rule="given" if self.sigma is not None else "auto",
            p_min_rule=("n_clusters" if self.n_clusters is not None else
                        "given" if self.p_min is not None else "auto"),
            n_cells=int(filled.sum()), passes=int(stats["passes"]),
            final_rel_change=float(final), final_rel_stderr=float(stats["rel_stderr"][-1]),
            final_mc_ratio=float(stats["mc_ratio"][-1]),
            rel_total_stderr=float(stats["rel_total_stderr"]),
            interpolator_epochs=int(history["epochs"]),
            interpolator_stop="plateau" if auto else "patience",
            interpolator_validation_loss=float(history["best_validation"]), n_samples=int(n))
        return ScoreModel(NoiseToScore(net, sigma), features.space, sigma, "kgmm",
                          cells=self._cells_dataset(features.space, stats, filled, d, sigma),
                          attrs=attrs, history={"rel_change": stats["rel_change"],
                                                "rel_stderr": stats["rel_stderr"],
                                                "mc_ratio": stats["mc_ratio"], **history})

    @staticmethod
    def _step_budget(rho):
        """At most ``STEPS_PER_NOISE / rho^2`` full-batch steps (200 to 3x10^4), ``rho`` the
        count-weighted relative total standard error of the cell means."""
        if not np.isfinite(rho) or rho <= 0:
            return 30_000
        return int(np.clip(STEPS_PER_NOISE / rho**2, 200, 30_000))

    def _noisy_partition(self, Y, sigma, p_min, rng):
        """The partition, built on one noisy draw of (a subsample of) the data."""
        n = Y.shape[0]
        tree_n = min(n, int(np.ceil(100.0 / p_min)))
        rows = np.sort(rng.choice(n, size=tree_n, replace=False)) if tree_n < n else slice(None)
        tree_data = np.asarray(Y[rows])
        tree_data = tree_data + sigma * rng.standard_normal(tree_data.shape)
        return BisectingPartition(p_min=p_min, seed=int(rng.integers(2**31))).fit(
            tree_data.astype(Y.dtype))

    def _warn_on(self, stats, filled):
        """Warnings for sparse cells and unconverged passes, each saying what to change."""
        per_cell = (np.median(stats["count"][filled])
                    / (stats["passes"] * (2 if self.antithetic else 1)))
        if per_cell < 20:
            warnings.warn(f"the median cell holds {per_cell:.1f} samples per pass: the cell "
                          "averages are noisy; increase p_min (fewer cells) or use more data",
                          stacklevel=4)
        passes = int(stats["passes"])
        rel = stats["rel_change"][-1] if len(stats["rel_change"]) else float("nan")
        se_rel, mc = float(stats["rel_stderr"][-1]), float(stats["mc_ratio"][-1])
        unmet, loosen, need = [], [], 2.0 * passes
        if not rel < self.tol:
            unmet.append(f"relative change {rel:.2g} >= tol={self.tol:g}")
            loosen.append("tol")
        if self.stderr_tol is not None and not se_rel < self.stderr_tol:
            unmet.append(f"relative Monte Carlo standard error {se_rel:.2g} >= "
                         f"stderr_tol={self.stderr_tol:g}")
            loosen.append("stderr_tol")
            need = max(need, passes * (se_rel / self.stderr_tol) ** 2)  # se^2 ~ 1 / passes
        if self.mc_tol is not None and not mc <= self.mc_tol:
            unmet.append(f"Monte Carlo / total standard error {mc:.2g} > mc_tol={self.mc_tol:g}")
            loosen.append("mc_tol")
            if 0 < mc < 1:  # total^2 = data^2 + mc^2, mc^2 ~ 1 / passes
                t = self.mc_tol
                need = max(need, passes * mc**2 * (1 - t**2) / (t**2 * (1 - mc**2)))
        if unmet:
            warnings.warn(f"KGMM passes did not converge in max_passes={self.max_passes} ("
                          f"{'; '.join(unmet)}): raise max_passes to about "
                          f"{int(np.ceil(1.2 * need))}, or loosen {'/'.join(loosen)}, or use "
                          "fewer cells (larger p_min)", stacklevel=4)

    def _cells_dataset(self, space, stats, filled, d, sigma):
        """Per-cell estimates in physical units as an xr.Dataset over (cell, feature)."""
        mean_z = stats["mean_z"][filled]
        count = stats["count"][filled]
        score_std = -mean_z / sigma
        se_std = stats["stderr_z"][filled] / sigma
        total_std = stats["block_stderr_z"][filled] / sigma
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
                           {"long_name": "standard error of the cell score (Monte Carlo: "
                                         "spread between passes)"}),
                "total_stderr": (("cell", "feature"), space.score_to_physical(
                    np.repeat(total_std[:, None], d, axis=1)),
                    {"long_name": "standard error of the cell score (data and Monte Carlo: "
                                  "spread between blocks of consecutive samples)"}),
                "count": (("cell",), count, {"long_name": "noisy samples over all passes"}),
                "divergence_std": (("cell",), div_std,
                                   {"long_name": "moment estimate of div s (standardized units)"}),
            },
            coords=coords, attrs={"sigma": sigma, "passes": int(stats["passes"])})
